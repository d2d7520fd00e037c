"""A real local HTTP(S) server for artifact fetches: files with Range support, and hooks
to cut a transfer part way, to throttle it, to ignore ranges and to redirect.

Used by the artifact tests and by bench/artifact_fetch.py; it runs in a thread of
the test process and is shut down (and joined) when its ``with`` block ends.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")

# A catalog entry whose artifacts this server serves: model.bin (right hash and size)
# and broken.bin (the same file under a wrong hash). Fill in url, sha, size, wrong.
LLM_ENTRY = """\
name = "llm"
description = "inference with a model bundle"
version = "1"
role = "b2b"

[image]
kind = "disk"
file = "base.qcow2"

[spec]
vcpus = 1
memory_mib = 256

[[artifacts]]
name = "model.bin"
url = "{url}/model.bin"
sha256 = "{sha}"
kind = "model"
size = {size}

[[artifacts]]
name = "broken.bin"
url = "{url}/model.bin"
sha256 = "{wrong}"
kind = "model"
"""


@dataclass
class ServerState:
    root: Path
    cut_after: int | None = None  # close the next transfer after this many body bytes
    cut_times: int = 1  # ... and the ones after it, this many transfers in all
    unavailable: int = 0  # answer this many requests 503 (an origin restarting)
    stall_s: float = 0  # before that close, send nothing for this long (a stalled link)
    credentials: str | None = None  # "user:password" to demand as Basic auth (else 401)
    throttle_bps: int = 0  # 0: as fast as the machine goes
    ignore_range: bool = False  # answer 200 with the whole file to a Range request
    hide_length: bool = False  # no Content-Length: the body ends when the connection does
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location (a 302)
    sent: int = 0  # body bytes written to clients, all requests together
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)  # path, Range, status
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            if state.credentials is not None:
                token = base64.b64encode(state.credentials.encode()).decode()
                if self.headers.get("Authorization") != f"Basic {token}":
                    self._status(401, None)
                    self.send_header("WWW-Authenticate", 'Basic realm="origin"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            with state.lock:
                busy, state.unavailable = state.unavailable > 0, max(0, state.unavailable - 1)
            if busy:
                self._status(503, self.headers.get("Range"))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            location = state.redirects.get(self.path)
            if location is not None:
                self._status(302, self.headers.get("Range"))
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path = state.root / unquote(self.path.lstrip("/").split("?")[0])
            if not path.is_file():
                self._status(404, None)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = path.stat().st_size
            start, end = 0, size - 1
            asked = self.headers.get("Range")
            m = _RANGE_RE.match(asked or "")
            status = 200
            if m and not state.ignore_range:
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else size - 1
                if start >= size:
                    self._status(416, asked)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            self._status(status, asked)
            if state.hide_length:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            self.wfile.flush()
            self._send(path, start, end - start + 1)

        def _status(self, status: int, asked: str | None) -> None:
            with state.lock:
                state.requests.append((self.path, asked, status))
            self.send_response(status)

        def _send(self, path: Path, offset: int, count: int) -> None:
            with state.lock:
                cut = state.cut_after
                state.cut_times -= 1
                if state.cut_times <= 0:
                    state.cut_after, state.cut_times = None, 1
            limit = count if cut is None else min(count, cut)
            chunk = 1 << 20 if not state.throttle_bps else max(state.throttle_bps // 20, 1024)
            tls = isinstance(self.connection, ssl.SSLSocket)  # sendfile would skip the TLS
            with path.open("rb") as f:
                left = limit
                while left > 0:
                    try:
                        if tls:
                            n = self.connection.send(os.pread(f.fileno(), min(chunk, left), offset))
                        else:
                            n = os.sendfile(
                                self.connection.fileno(), f.fileno(), offset, min(chunk, left)
                            )
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    if n == 0:
                        break
                    offset += n
                    left -= n
                    with state.lock:
                        state.sent += n
                    if state.throttle_bps:
                        time.sleep(n / state.throttle_bps)
            if cut is not None:
                time.sleep(state.stall_s)
                self.close_connection = True
                self.connection.shutdown(2)

    return Handler


@contextmanager
def artifact_server(
    root: Path, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[str, ServerState]]:
    """Serve ``root`` on a free loopback port: yields (base URL, state). With ``tls``
    (a server context with its certificate loaded) the URL is https."""
    state = ServerState(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="artifact-server", daemon=True)
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main() -> None:
    """Serve a folder from its own process (benchmarks): prints the URL, serves until
    its standard input closes."""
    import sys

    with artifact_server(Path(sys.argv[1])) as (url, _):
        sys.stdout.write(url + "\n")
        sys.stdout.flush()
        sys.stdin.read()


if __name__ == "__main__":
    main()
