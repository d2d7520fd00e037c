"""A TCP relay in front of the appliance that can cut its event streams and refuse
new ones while every other request passes: the UI's fallback to polling, seen with
the appliance still answering."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

EVENTS = b"GET /api/v1/events"


class StreamCutter:
    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._streams: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.cut = False
        self.streams_opened = 0  # event streams asked for since the relay started
        self.requests = 0  # HTTP requests relayed, event streams included
        # (monotonic time, what passed): request lines, and the streams' event types
        # ("event: vm.state"), so a test that counts requests can say which and why.
        self.log: list[tuple[float, str]] = []
        self._threads: list[threading.Thread] = []

    def cut_streams(self) -> None:
        """End the open event streams; refuse new ones until ``allow``."""
        with self._lock:
            self.cut = True
            for conn in self._streams:
                with suppress(OSError):  # the UI may have closed it already
                    conn.shutdown(socket.SHUT_RDWR)
            self._streams.clear()

    def allow(self) -> None:
        with self._lock:
            self.cut = False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._serve, client)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _serve(self, client: socket.socket) -> None:
        first = client.recv(65536)
        with self._lock:
            if first.startswith(EVENTS):
                self.streams_opened += 1
                if self.cut:
                    client.close()
                    return
                self._streams.add(client)
        upstream = socket.create_connection(self._target)
        self._count(first)
        upstream.sendall(first)
        self._spawn(_pipe, upstream, client, self._events if first.startswith(EVENTS) else None)
        _pipe(client, upstream, self._count)

    def since(self, at: float) -> list[str]:
        """What passed after monotonic time ``at``, each with its offset from it."""
        with self._lock:
            return [f"+{when - at:.1f}s {what}" for when, what in self.log if when > at]

    def _count(self, data: bytes) -> None:
        # Request lines; the UI's requests are small, never split across reads here.
        lines = [line for line in data.split(b"\r\n") if line.endswith(b" HTTP/1.1")]
        with self._lock:
            self.requests += len(lines)
            now = time.monotonic()
            self.log += [(now, line.decode(errors="replace")) for line in lines]

    def _events(self, data: bytes) -> None:
        kinds = [line for line in data.split(b"\n") if line.startswith(b"event: ")]
        with self._lock:
            now = time.monotonic()
            self.log += [(now, kind.decode(errors="replace")) for kind in kinds]

    def close(self) -> None:
        self._listener.close()


def _pipe(
    source: socket.socket, sink: socket.socket, seen: Callable[[bytes], None] | None = None
) -> None:
    try:
        while data := source.recv(65536):
            if seen is not None:
                seen(data)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextmanager
def stream_cutter(target: str) -> Iterator[StreamCutter]:
    cutter = StreamCutter(target)
    cutter._spawn(cutter._accept)
    try:
        yield cutter
    finally:
        cutter.close()
