"""Hostile clients against a real daemon: oversized bodies, floods, slow-loris."""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("hostile")
    cfg = make_config(tmp)
    extra = {
        "TOWERBOX_API_RATE_PER_S": "1",
        "TOWERBOX_API_RATE_BURST": str(RATE_BURST),
        "TOWERBOX_API_HEADER_TIMEOUT_S": "2",
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
