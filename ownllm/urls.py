"""One rule for the URLs the tools call (an API base URL, an upstream server)."""

from __future__ import annotations

from urllib.parse import urlsplit


def is_http_url(url: str) -> bool:
    """http:// or https://, a host, and a port (if any) from 1 to 65535."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # not a number, or above 65535
        port_ok = False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok
