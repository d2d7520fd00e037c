"""One HTTP(S) GET whose body is read straight into the caller's buffers.

A download of gigabytes is bound by how often its bytes are copied. An HTTP library
that hands the body out as new ``bytes`` objects copies each byte three or four times
before the file sees it; here each read copies once, from the socket into the buffer
that is then written and hashed. Each read is one ``recv``: it answers as soon as
anything arrived, so a slow link still shows progress, and bytes that arrived before
a reset are the caller's, not lost with the exception.

What a node's operator expects of a downloader is kept: redirects are followed (up to
``MAX_REDIRECTS``), TLS is verified against the system's CA store (or
``SSL_CERT_FILE``, or certifi's bundle where the node has no store), credentials in
the URL are sent as Basic auth (to that host only), and the standard proxy variables
(``https_proxy``, ``http_proxy``, ``all_proxy``, ``no_proxy``) route a site's egress
through its proxy: a CONNECT tunnel for https.
A unix socket stands in for TCP where the node reaches an origin through a local
relay. Network failures leave here as :class:`SourceError`, never as ``OSError``: an
``OSError`` past this module is the disk's.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
from urllib.parse import SplitResult, quote, unquote, urljoin, urlsplit
from urllib.request import getproxies, proxy_bypass

import certifi

from towerbox_core.sync_client import UnixHTTPConnection

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
# Every printable ASCII character stays as it is in a request target; anything else
# (a space, a non-ASCII name) is percent-encoded, as a browser does.
_TARGET_SAFE = "".join(chr(c) for c in range(33, 127))


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
        """Read what has arrived into ``view`` (waiting for something); 0: the body ended.

        A body cut short also ends with 0: the caller compares with the length."""
        resp = self._resp
        if resp.isclosed():
            return 0
        if resp.length is not None:
            view = view[: resp.length]
            if not view:
                return 0
        try:
            if resp.chunked:
                data = resp.read1(len(view))
                view[: len(data)] = data
                return len(data)
            # One recv into the caller's buffer (the response's own readinto would
            # wait until the whole view is full, and drop it all on a reset).
            n = resp.fp.readinto1(view)
        except (OSError, http.client.HTTPException) as err:
            raise SourceError(_describe(err)) from err
        if resp.length is not None:
            resp.length -= n
        return n

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
        parts = urlsplit(url)
        conn, target, extra = _route(parts, timeout_s, unix_socket)
        try:
            conn.request("GET", target, headers={**headers, **extra})
            resp = conn.getresponse()
        except (OSError, ValueError, http.client.HTTPException) as err:
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


def _route(
    parts: SplitResult, timeout_s: float, unix_socket: str | None
) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """The connection for ``parts``, the request target and the headers it adds."""
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError as err:
        raise SourceError(f"bad port in {parts.geturl()}") from err
    target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), _TARGET_SAFE)
    extra = {}
    if parts.username is not None:
        extra["Authorization"] = _basic(parts.username, parts.password)
    if unix_socket is not None:
        return UnixHTTPConnection(unix_socket, timeout_s, host), target, extra
    proxy = _proxy_for(parts.scheme, host)
    if parts.scheme == "https":
        context = tls_context()
        if proxy is None:
            direct = http.client.HTTPSConnection(host, port, timeout=timeout_s, context=context)
            return direct, target, extra
        # TLS runs inside the tunnel, verified against the origin's name, not the proxy's.
        tunnel = http.client.HTTPSConnection(
            proxy.hostname or "", proxy.port or 80, timeout=timeout_s, context=context
        )
        tunnel.set_tunnel(host, port or 443, headers=_proxy_auth(proxy))
        return tunnel, target, extra
    if proxy is None:
        return http.client.HTTPConnection(host, port, timeout=timeout_s), target, extra
    # Through a proxy a plain-HTTP request names the whole URL (its Host header too).
    origin = f"http://{parts.hostname}" + (f":{port}" if port else "")
    via = http.client.HTTPConnection(proxy.hostname or "", proxy.port or 80, timeout=timeout_s)
    return via, origin + target, {**extra, **_proxy_auth(proxy)}


def tls_context() -> ssl.SSLContext:
    """Verifies against the system's CA store (or ``SSL_CERT_FILE``); on a node image
    without one, against certifi's bundle (the one pip and httpx trust)."""
    context = ssl.create_default_context()
    if not context.cert_store_stats()["x509_ca"]:
        context.load_verify_locations(certifi.where())
    return context


def _proxy_for(scheme: str, host: str) -> SplitResult | None:
    """The proxy the environment names for ``scheme``, unless ``no_proxy`` covers host."""
    proxies = getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme != "http" or not parts.hostname:
        raise SourceError(f"proxy {proxy!r}: only an http:// proxy is supported")
    return parts


def _proxy_auth(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    return {"Proxy-Authorization": _basic(proxy.username, proxy.password)}


def _basic(user: str, password: str | None) -> str:
    pair = f"{unquote(user)}:{unquote(password or '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _describe(err: BaseException) -> str:
    """What went wrong, in words an operator can act on."""
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, socket.gaierror):
        return (
            f"the host name does not resolve ({err.strerror}): check the URL, the proxy "
            "setting and the node's DNS"
        )
    if isinstance(err, ConnectionRefusedError):
        return "connection refused: nothing listens at that address and port"
    if isinstance(err, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer"
    return str(err) or type(err).__name__
