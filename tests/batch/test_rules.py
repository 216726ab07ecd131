"""The pure rules: where a line's request goes, how long a retry waits, what is retried."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ownllm.batch.run import BACKOFF_CAP_S, MAX_RETRY_AFTER_S, Verdict, backoff_s, classify, join_url, parse_retry_after


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("http://127.0.0.1:8765/v1", "/v1/chat/completions", "http://127.0.0.1:8765/v1/chat/completions"),
        ("http://127.0.0.1:8765/v1/", "/v1/completions", "http://127.0.0.1:8765/v1/completions"),
        (
            "https://abc.execute-api.us-east-1.amazonaws.com/prod/v1",
            "/v1/chat/completions",
            "https://abc.execute-api.us-east-1.amazonaws.com/prod/v1/chat/completions",
        ),
        (
            "https://abc.execute-api.us-east-1.amazonaws.com/prod",
            "/v1/chat/completions",
            "https://abc.execute-api.us-east-1.amazonaws.com/prod/v1/chat/completions",
        ),
    ],
)
def test_a_line_url_joins_the_base_without_repeating_v1(base, path, url):
    assert join_url(base, path) == url


def test_retry_after_in_seconds_and_as_an_http_date():
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT

    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now) == 30.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now) == 0.0  # already past: at once
    assert parse_retry_after("99999", now) == MAX_RETRY_AFTER_S
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


@given(retry=st.integers(0, 30), seed=st.integers(0, 2**32))
def test_backoff_is_full_jitter_under_a_doubling_cap(retry, seed):
    delay = backoff_s(retry, None, random.Random(seed), base_s=0.5)

    assert 0.0 <= delay <= min(BACKOFF_CAP_S, 0.5 * 2**retry)


@given(retry=st.integers(0, 30), retry_after=st.floats(0, 600), seed=st.integers(0, 2**32))
def test_backoff_never_comes_before_retry_after(retry, retry_after, seed):
    assert backoff_s(retry, retry_after, random.Random(seed)) >= retry_after


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (200, {"choices": []}, Verdict.DONE),
        (200, ["not", "an", "object"], Verdict.FAILED),
        (429, {}, Verdict.RETRY),
        (503, {"error": {"code": "service_unavailable"}}, Verdict.RETRY),
        (503, {"error": {"code": "model_not_ready"}}, Verdict.STARTING),
        (503, {"error": {"code": "model_starting"}}, Verdict.STARTING),
        (504, {}, Verdict.RETRY),
        (400, {}, Verdict.FAILED),
        (401, {}, Verdict.FAILED),
        (404, {}, Verdict.FAILED),
        (500, {}, Verdict.FAILED),
        (502, {"error": {"code": "model_not_ready"}}, Verdict.FAILED),
    ],
)
def test_what_is_retried_and_what_is_final(status, body, verdict):
    assert classify(status, body) is verdict
