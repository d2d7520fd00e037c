"""Hostile clients against a real daemon: oversized bodies, floods, slow-loris on the
headers and on the body."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.appliance import make_config
from tests.support.daemon import Daemon, running_daemon

RATE_BURST = 20
BODY_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("hostile")
    cfg = make_config(tmp)
    extra = {
        "TOWERBOX_API_RATE_PER_S": "1",
        "TOWERBOX_API_RATE_BURST": str(RATE_BURST),
        "TOWERBOX_API_HEADER_TIMEOUT_S": "2",
        "TOWERBOX_API_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
    }
    with running_daemon(cfg, tmp, extra_env=extra) as d:
        d.wait_notify("READY=1")
        yield d


def _token(d: Daemon) -> str:
    password = (Path(d.env["TOWERBOX_STATE_DIR"]) / "admin-password").read_text().strip()
    login = httpx.post(
        f"{d.url}/api/v1/auth/login", json={"username": "admin", "password": password}
    )
    assert login.status_code == 201, login.text
    token: str = login.json()["token"]
    return token


def _connect(d: Daemon) -> socket.socket:
    url = urlsplit(d.url)
    return socket.create_connection((url.hostname, url.port), timeout=10)


def _read_answer(sock: socket.socket) -> str:
    """The status line, headers and body of one response (its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return (head + b"\r\n\r\n" + body).decode()


def test_a_declared_oversized_body_is_refused_before_it_is_sent(daemon: Daemon) -> None:
    token = _token(daemon)
    with _connect(daemon) as sock:
        sock.sendall(
            b"POST /api/v1/vms HTTP/1.1\r\nHost: appliance\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
        )
        answer = _read_answer(sock)
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"code":"body_too_large"' in answer
    assert '"limit_bytes":1048576' in answer


def test_a_chunked_body_is_refused_once_it_passes_the_limit(daemon: Daemon) -> None:
    token = _token(daemon)
    chunk = b" " * 65536
    with _connect(daemon) as sock:
        sock.sendall(
            b"POST /api/v1/vms HTTP/1.1\r\nHost: appliance\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        # 2 MiB in chunks and no final chunk: the answer must come without it.
        for _ in range(32):
            try:
                sock.sendall(b"10000\r\n" + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading: its answer is waiting
        answer = _read_answer(sock)
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"code":"body_too_large"' in answer


def test_a_flooding_client_gets_429_while_another_is_served(daemon: Daemon) -> None:
    flooder, other = _token(daemon), _token(daemon)
    with daemon.http(flooder) as flood, daemon.http(other) as calm:
        codes = [flood.get("/api/v1/vms").status_code for _ in range(RATE_BURST + 5)]
        assert codes[:RATE_BURST] == [200] * RATE_BURST
        assert 429 in codes[RATE_BURST:]
        refused = flood.get("/api/v1/vms")
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert calm.get("/api/v1/vms").status_code == 200
        assert flood.get("/healthz").status_code == 200  # health checks are never limited


def test_slow_loris_clients_neither_block_others_nor_hold_connections(daemon: Daemon) -> None:
    token = _token(daemon)
    slow = [_connect(daemon) for _ in range(50)]
    for sock in slow:
        sock.sendall(b"GET /api/v1/vms HTTP/1.1\r\nHost: appliance\r\nX-Slow: ")
    stop = threading.Event()
    closed: set[int] = set()

    def trickle() -> None:  # one byte per socket every 200 ms, never finishing a header
        while not stop.is_set() and len(closed) < len(slow):
            for i, sock in enumerate(slow):
                if i in closed:
                    continue
                try:
                    sock.sendall(b"a")
                except OSError:
                    closed.add(i)
            stop.wait(0.2)

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        with httpx.Client(
            base_url=daemon.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as client:
            assert client.get("/api/v1/vms").status_code == 200
        # The server closes them all once the header deadline (2 s here) has passed.
        deadline = time.monotonic() + 30
        while len(closed) < len(slow) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(closed) == len(slow)
    finally:
        stop.set()
        thread.join()
        for sock in slow:
            sock.close()


def _post_head(token: str, length: int) -> bytes:
    return (
        b"POST /api/v1/vms HTTP/1.1\r\nHost: appliance\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()
    )


def test_a_trickled_body_gets_408_while_another_client_is_served(daemon: Daemon) -> None:
    token = _token(daemon)
    with _connect(daemon) as sock, daemon.http(token) as calm:
        sock.sendall(_post_head(token, 100_000) + b"{")
        start = time.monotonic()
        # A byte every 0.3 s, never finishing: it stops once an answer waits.
        while not select.select([sock], [], [], 0.3)[0]:
            assert time.monotonic() - start < BODY_TIMEOUT_S + 10, "no answer"
            sock.sendall(b" ")
            assert calm.get("/api/v1/vms").status_code == 200
        answer = _read_answer(sock)
        took = time.monotonic() - start
        assert sock.recv(1) == b""  # and the connection is closed
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "content-type: application/problem+json" in answer.lower()
    problem = json.loads(answer.partition("\r\n\r\n")[2])
    assert problem["code"] == "body_timeout"
    assert problem["timeout_s"] == BODY_TIMEOUT_S
    assert BODY_TIMEOUT_S * 0.9 <= took < BODY_TIMEOUT_S + 5


def test_a_body_at_a_normal_pace_and_an_event_stream_are_not_cut(daemon: Daemon) -> None:
    token = _token(daemon)
    body = b"{" + b" " * 4000 + b"}"  # valid JSON, not a VM: 400 once it is all read
    with _connect(daemon) as sock:
        sock.sendall(_post_head(token, len(body)))
        for i in range(0, len(body), 1000):  # in pieces, well within the deadline
            time.sleep(0.1)
            sock.sendall(body[i : i + 1000])
        answer = _read_answer(sock)
        assert answer.startswith("HTTP/1.1 400"), answer
        assert '"code":"invalid_request"' in answer
        # The same keep-alive connection then holds an event stream, which has no
        # body and never ends, past the body deadline.
        sock.sendall(
            b"GET /api/v1/events HTTP/1.1\r\nHost: appliance\r\n"
            + f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        received = b""
        end = time.monotonic() + BODY_TIMEOUT_S + 1
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            assert chunk, f"the event stream was cut: {received!r}"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200"), received
        assert b"event: hello" in received


def test_made_up_tokens_share_their_address_bucket(daemon: Daemon) -> None:
    """A fresh bogus token per request must not mint a fresh bucket per request."""
    with daemon.http(_token(daemon)) as known:
        assert known.get("/api/v1/vms").status_code == 200  # seen to authenticate
        codes = []
        for i in range(3 * RATE_BURST):
            with daemon.http(f"tbn_made-up-{i}") as bogus:
                codes.append(bogus.get("/api/v1/vms").status_code)
        # At most the address's burst (and its refill, 1/s) gets through to a 401.
        assert set(codes) == {401, 429}
        assert codes.count(429) >= RATE_BURST
        assert codes[-1] == 429
        # A client whose token authenticated keeps its own bucket through the flood.
        assert known.get("/api/v1/vms").status_code == 200


def test_a_request_that_is_not_http_gets_a_problem_document(daemon: Daemon) -> None:
    with _connect(daemon) as sock:
        sock.sendall(
            b"PUT /api/v1/vms HTTP/1.1\r\nHost: appliance\r\nContent-Length: /x/console\r\n\r\n"
        )
        answer = _read_answer(sock)
    assert answer.startswith("HTTP/1.1 400"), answer
    assert "content-type: application/problem+json" in answer.lower()
    assert '"code":"invalid_http"' in answer
