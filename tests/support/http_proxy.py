"""A real forward HTTP proxy on loopback, as a site's egress proxy: plain-HTTP requests
in absolute form are forwarded, HTTPS goes through a CONNECT tunnel. It can demand
Basic credentials and records what it was asked, so a test can tell that a fetch
went through it."""

from __future__ import annotations

import base64
import http.client
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class ProxyState:
    credentials: str | None = None  # "user:password" the proxy demands, or none
    seen: list[tuple[str, str]] = field(default_factory=list)  # method, target
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: ProxyState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _allowed(self) -> bool:
            with state.lock:
                state.seen.append((self.command, self.path))
            if state.credentials is None:
                return True
            token = base64.b64encode(state.credentials.encode()).decode()
            if self.headers.get("Proxy-Authorization") == f"Basic {token}":
                return True
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="site"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def do_GET(self) -> None:
            if not self._allowed():
                return
            target = urlsplit(self.path)
            upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
            path = (target.path or "/") + (f"?{target.query}" if target.query else "")
            headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-authorization"}
            upstream.request("GET", path, headers=headers)
            resp = upstream.getresponse()
            self.send_response(resp.status)
            for name, value in resp.getheaders():
                if name.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(name, value)
            if resp.getheader("content-length") is None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            try:
                while chunk := resp.read1(1 << 20):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            upstream.close()

        def do_CONNECT(self) -> None:
            if not self._allowed():
                return
            host, _, port = self.path.rpartition(":")
            upstream = socket.create_connection((host, int(port)), timeout=30)
            self.send_response(200, "Connection established")
            self.end_headers()
            self.close_connection = True
            _relay(self.connection, upstream)

    return Handler


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copies both ways until either side closes."""
    try:
        while True:
            ready, _, _ = select.select([a, b], [], [], 30)
            if not ready:
                return
            for src in ready:
                data = src.recv(1 << 16)
                if not data:
                    return
                (b if src is a else a).sendall(data)
    except OSError:
        return
    finally:
        b.close()


@contextmanager
def http_proxy() -> Iterator[tuple[str, ProxyState]]:
    """A proxy on a free loopback port: yields (its URL, state)."""
    state = ProxyState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="http-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
