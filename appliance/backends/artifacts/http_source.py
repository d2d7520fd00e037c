"""One HTTP(S) GET whose body is read straight into the caller's buffers.

A download of gigabytes is bound by how often its bytes are copied. An HTTP library
that hands the body out as new ``bytes`` objects copies each byte three or four times
before the file sees it; ``http.client``'s ``readinto`` copies it once, from the
socket into the buffer that is then written and hashed. Redirects are followed (a
few, like a browser), TLS is verified against the system's CA store (or
``SSL_CERT_FILE``), and a unix socket stands in for TCP where the node reaches an
origin through a local relay. Network failures leave here as :class:`SourceError`,
never as ``OSError``: an ``OSError`` past this module is the disk's.
"""

from __future__ import annotations

import http.client
import ssl
from urllib.parse import urljoin, urlsplit

from towerbox_core.sync_client import UnixHTTPConnection

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


class SourceError(Exception):
    """The transfer failed on the network side: refused, reset, timed out, bad TLS."""


class Body:
    """An answer whose headers are read and whose body is waiting on the socket."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        self._conn = conn
        self._resp = resp
        self.status = resp.status

    def header(self, name: str) -> str | None:
        return self._resp.getheader(name)

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` as far as the body goes; fewer bytes only at its end (0: ended)."""
        try:
            return self._resp.readinto(view)
        except (OSError, http.client.HTTPException) as err:
            raise SourceError(_describe(err)) from err

    def read(self, limit: int) -> bytes:
        try:
            return self._resp.read(limit)
        except (OSError, http.client.HTTPException) as err:
            raise SourceError(_describe(err)) from err

    def close(self) -> None:
        self._resp.close()
        self._conn.close()

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_body(
    url: str, headers: dict[str, str], timeout_s: float, unix_socket: str | None = None
) -> Body:
    """GET ``url`` (following redirects) and return the answer with its body unread.

    ``timeout_s`` bounds the connection and every read that follows it."""
    for _ in range(MAX_REDIRECTS + 1):
        conn = _connection(url, timeout_s, unix_socket)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            raise SourceError(_describe(err)) from err
        location = resp.getheader("location")
        if resp.status not in _REDIRECTS or not location:
            return Body(conn, resp)
        resp.close()
        conn.close()
        url = urljoin(url, location)
        if urlsplit(url).scheme not in ("http", "https"):
            raise SourceError(f"redirected to {url}, which is not HTTP(S)")
        unix_socket = None  # a relay's redirect leads off the node
    raise SourceError(f"more than {MAX_REDIRECTS} redirects")


def _connection(url: str, timeout_s: float, unix_socket: str | None) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if unix_socket is not None:
        return UnixHTTPConnection(unix_socket, timeout_s, host)
    try:
        port = parts.port
    except ValueError as err:
        raise SourceError(f"bad port in {url}") from err
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            host, port, timeout=timeout_s, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(host, port, timeout=timeout_s)


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer"
    return str(err) or type(err).__name__
