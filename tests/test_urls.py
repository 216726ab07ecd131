"""ownllm.urls: which URLs the tools accept, and which go through the user's proxy."""

from __future__ import annotations

import pytest

from ownllm.urls import honours_proxy_env, is_http_url, is_loopback, proxy_for

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def proxy_env(monkeypatch):
    """proxy_env(http=..., https=..., all=..., no=...): exactly those proxy variables set, upper case."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)

    def set_env(**values: str) -> None:
        for scheme, value in values.items():
            monkeypatch.setenv(f"{scheme.upper()}_PROXY", value)

    return set_env


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765/v1",
        "http://127.8.9.10/v1",
        "http://localhost:8000/v1",
        "http://LOCALHOST./v1",
        "http://api.localhost/v1",
        "http://[::1]:8765/v1",
        "http://[::ffff:127.0.0.1]:8765/v1",
    ],
)
def test_this_machines_addresses_are_loopback_and_read_no_proxy_variables(url, proxy_env):
    proxy_env(http="http://proxy.corp:3128", https="http://proxy.corp:3128", all="http://proxy.corp:3128")
    assert (is_loopback(url), honours_proxy_env(url), proxy_for(url)) == (True, False, None)


@pytest.mark.parametrize(
    "url",
    [
        "https://abc.execute-api.us-east-1.amazonaws.com/prod/v1",
        "http://10.0.0.5:8000/v1",
        "http://localhost.example/v1",
    ],
)
def test_other_hosts_are_not_loopback_and_honour_the_proxy_variables(url):
    assert (is_loopback(url), honours_proxy_env(url)) == (False, True)


def test_a_remote_url_gets_the_proxy_named_for_its_scheme(proxy_env):
    proxy_env(http="http://plain.corp:3128", https="secure.corp:3129")
    assert proxy_for("http://api.example.com/v1") == "http://plain.corp:3128"
    assert proxy_for("https://api.example.com/v1") == "http://secure.corp:3129"


def test_all_proxy_serves_a_scheme_without_its_own(proxy_env):
    proxy_env(all="http://every.corp:3128")
    assert proxy_for("https://api.example.com/v1") == "http://every.corp:3128"


def test_no_proxy_exempts_the_hosts_it_names(proxy_env):
    proxy_env(https="http://proxy.corp:3128", no="internal.example.com,.corp.example")
    assert proxy_for("https://internal.example.com/v1") is None
    assert proxy_for("https://api.corp.example/v1") is None
    assert proxy_for("https://api.example.com/v1") == "http://proxy.corp:3128"


def test_without_proxy_variables_nothing_goes_through_a_proxy(proxy_env):
    proxy_env()
    assert proxy_for("https://api.example.com/v1") is None


@pytest.mark.parametrize(
    "url, accepted",
    [
        ("http://127.0.0.1:8765/v1", True),
        ("https://abc.execute-api.us-east-1.amazonaws.com/prod/v1", True),
        ("http://[::1]:8765/v1", True),
        ("http://[::1/v1", False),  # urlsplit raised ValueError("Invalid IPv6 URL")
        ("http://my host/v1", False),  # http.client raised InvalidURL once the first request went out
        ("http://host/v1\n", False),
        ("http://host:0/v1", False),
        ("http://host:99999/v1", False),
        ("ftp://host/v1", False),
    ],
)
def test_only_a_url_a_client_can_send_to_is_an_http_url(url, accepted):
    assert is_http_url(url) is accepted
