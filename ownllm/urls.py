"""One rule for the URLs the tools call (an API base URL, an upstream server), and one for
whether a client for a URL goes through the user's proxy.

Proxies: a client for a loopback URL (localhost, 127.0.0.0/8, ::1: `ownllm local`, a model
server on this machine) never reads HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, since a proxy
elsewhere cannot reach this machine's loopback; one for any other URL honours them, and
NO_PROXY, the way curl and urllib do.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from urllib.parse import urlsplit

# For a child process that only ever calls this machine (the local stack's Lambda environments,
# whose boto3 reads the proxy variables it inherits): every host bypasses any proxy. Both cases:
# urllib, and so botocore, read the lower-case name first.
NO_PROXY_ENV = {"no_proxy": "*", "NO_PROXY": "*"}


def is_http_url(url: str) -> bool:
    """http:// or https://, a host, and a port (if any) from 1 to 65535."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # not a number, or above 65535
        port_ok = False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok


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
