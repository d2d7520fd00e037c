"""The body deadline of towerbox_core.http_protocol, on a real uvicorn server with a
small application: a body that stalls or falls behind the minimum pace gets 408; one
that keeps the pace, one the server itself reads slowly, and one held back for
100 Continue do not; an answer that never ends is not cut."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from towerbox_core.http_protocol import PROTOCOL_PATH, DeadlineProtocol

BODY_TIMEOUT_S = 1.0
MIN_RATE = 2000.0  # bytes/s


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body and answers its size; ``/slow?S`` pauses S seconds between
    reads, ``/late?S`` before the first; ``/stream`` answers for longer than any
    deadline here."""
    if scope["type"] != "http":
        return
    pause = float(scope["query_string"] or 0)
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(25):  # 5 s, longer than any deadline here
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await asyncio.sleep(0.2)
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/late":
        await asyncio.sleep(pause)
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
        if scope["path"] == "/slow":
            await asyncio.sleep(pause)
    body = str(size).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


SERVERS: list[uvicorn.Server] = []  # the module's server, for a look at its connections


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    saved = vars(DeadlineProtocol).copy()
    DeadlineProtocol.header_timeout_s = 5.0
    DeadlineProtocol.body_timeout_s = BODY_TIMEOUT_S
    DeadlineProtocol.body_min_bytes_per_s = MIN_RATE
    sock = socket.socket()  # protocol number 0, as the appliance's and uvicorn's own
    sock.bind(("127.0.0.1", 0))
    # asyncio's own loop, as the appliance runs it (uvloop would turn Nagle off itself).
    config = uvicorn.Config(
        app, http=PROTOCOL_PATH, log_config=None, lifespan="off", loop="asyncio"
    )
    srv = uvicorn.Server(config)
    SERVERS[:] = [srv]
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        while not srv.started:
            time.sleep(0.01)
        yield sock.getsockname()
    finally:
        srv.should_exit = True
        thread.join()
        sock.close()
        for name in ("header_timeout_s", "body_timeout_s", "body_min_bytes_per_s"):
            setattr(DeadlineProtocol, name, saved[name])


def _post(address: tuple[str, int], path: str, length: int, *extra: bytes) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    head = [
        f"POST {path} HTTP/1.1",
        "Host: t",
        f"Content-Length: {length}",
        *map(bytes.decode, extra),
    ]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    return sock


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,  # 100 Continue
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body


def _trickle(sock: socket.socket, piece: bytes, every_s: float, for_s: float) -> bool:
    """Sends ``piece`` every ``every_s`` for up to ``for_s``; True once an answer waits."""
    end = time.monotonic() + for_s
    while time.monotonic() < end:
        if select.select([sock], [], [], every_s)[0]:
            return True
        sock.sendall(piece)
    return False


def test_a_stalled_body_gets_408_and_the_connection_is_closed(server: tuple[str, int]) -> None:
    with _post(server, "/", 1000) as sock:
        sock.sendall(b"x")
        start = time.monotonic()
        status, body = _answer(sock)
        took = time.monotonic() - start
        assert sock.recv(1) == b""  # closed after the answer
    assert status == 408
    problem = json.loads(body)
    assert problem["code"] == "body_timeout"
    assert problem["min_bytes_per_s"] == MIN_RATE
    assert BODY_TIMEOUT_S * 0.9 <= took < BODY_TIMEOUT_S + 2


def test_a_body_below_the_pace_gets_408(server: tuple[str, int]) -> None:
    # 400 bytes/s against 2000: the allowance runs down at 0.8 s a second.
    with _post(server, "/", 1_000_000) as sock:
        start = time.monotonic()
        assert _trickle(sock, b"x" * 100, 0.25, 10)
        took = time.monotonic() - start
        status, _ = _answer(sock)
    assert status == 408
    assert took < 4


def test_a_body_at_the_pace_may_take_longer_than_the_timeout(server: tuple[str, int]) -> None:
    with _post(server, "/", 20 * 1000) as sock:
        start = time.monotonic()
        for _ in range(20):  # 10 kB/s against 2000 bytes/s, for 2 s
            assert not select.select([sock], [], [], 0.1)[0]
            sock.sendall(b"x" * 1000)
        assert time.monotonic() - start > 2 * BODY_TIMEOUT_S
        assert _answer(sock)[0] == 200
        # Keep-alive: the same connection takes the next request.
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        assert _answer(sock) == (200, b"3")


def test_a_body_the_server_reads_slowly_is_not_cut(server: tuple[str, int]) -> None:
    # The application pauses longer than the deadline between reads, and uvicorn
    # stops reading once 64 KiB wait for it: the client cannot help that.
    size = 512 * 1024
    with _post(server, f"/slow?{1.2 * BODY_TIMEOUT_S}", size) as sock:
        sock.sendall(b"x" * size)
        assert _answer(sock) == (200, str(size).encode())


def test_a_client_waiting_for_100_continue_is_not_cut(server: tuple[str, int]) -> None:
    with _post(server, "/late?2", 5, b"Expect: 100-continue") as sock:
        status, _ = _answer(sock)  # the 100 comes once the application reads
        assert status == 100
        sock.sendall(b"hello")
        assert _answer(sock) == (200, b"5")


def test_an_answer_that_never_ends_is_not_cut(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        end = time.monotonic() + 3 * BODY_TIMEOUT_S
        received = b""
        while time.monotonic() < end:
            chunk = sock.recv(65536)
            assert chunk, "the stream was cut"
            received += chunk
    assert received.startswith(b"HTTP/1.1 200")


def test_nagle_is_off_on_the_servers_connections(server: tuple[str, int]) -> None:
    # With Nagle on, a keep-alive connection's second answer waits ~40 ms for the
    # client's delayed ACK before its body goes out.
    with socket.create_connection(server, timeout=10) as client:
        client.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        assert b" 200 " in client.recv(4096)
        (connection,) = SERVERS[0].server_state.connections
        transport = connection.transport  # type: ignore[attr-defined]
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
