"""One rule for the URLs the tools call (an API base URL, an upstream server), and one for
whether a client for a URL goes through the user's proxy.

Proxies: a client for a loopback URL (localhost, 127.0.0.0/8, ::1: `ownllm local`, a model
server on this machine) never reads HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, since a proxy
elsewhere cannot reach this machine's loopback; one for any other URL honours them, and
NO_PROXY, the way curl and urllib do.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.request
from urllib.parse import urlsplit

# Spaces and control characters: http.client refuses a URL holding one ("URL can't contain control
# characters", its _contains_disallowed_url_pchar_re), only once a request is sent.
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")


def is_http_url(url: str) -> bool:
    """http:// or https://, a host, a port (if any) from 1 to 65535, and no space or control character."""
    if _UNSENDABLE.search(url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number or above 65535; an unclosed '[' of an IPv6 host
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and (port is None or port > 0)


def is_loopback(url: str) -> bool:
    """Whether `url`'s host is this machine: localhost (and *.localhost, RFC 6761), 127.0.0.0/8 or ::1."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a name other than localhost
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def honours_proxy_env(url: str) -> bool:
    """Whether a client for `url` should read the proxy environment variables: not for loopback."""
    return not is_loopback(url)


def proxy_for(url: str) -> str | None:
    """The proxy URL the environment names for `url` (HTTPS_PROXY or HTTP_PROXY by its scheme, else
    ALL_PROXY; none when NO_PROXY covers its host), or None: always None for a loopback URL."""
    if not honours_proxy_env(url):
        return None
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()  # the *_proxy variables, either case (lower case wins)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"
