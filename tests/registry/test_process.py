"""The registry as a real process: `towerbox registry serve` over TLS on SQLite, the
admin CLI, and two uvicorn workers on one PostgreSQL taking the same site's batches."""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from registry.config import load_config, parse_database_url
from tests.registry.fleetapi import vm_entries
from tests.support.daemon import free_port
from tests.support.postgres import PostgresServer
from tests.support.registry_process import registry_cli, serve
from tests.support.tls import self_signed

TOWERBOX = str(Path(sys.executable).with_name("towerbox"))


def _env(tmp: Path, database: str = "", **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")},
        "TOWERBOX_REGISTRY_CONFIG": str(tmp / "absent.toml"),
        "TOWERBOX_REGISTRY_STATE_DIR": str(tmp / "state"),
        "TOWERBOX_REGISTRY_DATABASE": database,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def test_serve_over_tls_with_the_adminregistry_cli(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "registry")
    port = free_port()
    env = _env(
        tmp_path,
        TOWERBOX_REGISTRY_SERVE_PORT=str(port),
        TOWERBOX_REGISTRY_SERVE_TLS_CERT=str(cert),
        TOWERBOX_REGISTRY_SERVE_TLS_KEY=str(key),
    )
    url = f"https://127.0.0.1:{port}"
    ca = ssl.create_default_context(cafile=str(cert))
    made = registry_cli(
        env, "site-create", "edge-1", "--region", "eu", "--label", "tier=gold", "--json"
    )
    assert made.returncode == 0, made.stderr
    token = msgspec.json.decode(made.stdout)["enrollment_token"]
    with serve(env, url, tmp_path / "registry.log", ca):
        with pytest.raises(httpx.ConnectError):  # an agent without the CA refuses it
            httpx.get(url + "/healthz", timeout=5)
        with httpx.Client(base_url=url, verify=ca, timeout=30) as client:
            secret = client.post("/api/v1/enroll", json={"token": token}).json()["secret"]
            body = gzip.compress(msgspec.json.encode({"entries": vm_entries(1, 20)}))
            ack = client.post(
                "/api/v1/sync/journal",
                content=body,
                headers={"Authorization": f"Bearer {secret}", "Content-Encoding": "gzip"},
            )
            assert ack.json() == {"acked_seq": 20, "stored": 20}
    listed = registry_cli(env, "sites")
    assert listed.returncode == 0, listed.stderr
    assert "edge-1" in listed.stdout
    assert "online" in listed.stdout
    detail = msgspec.json.decode(registry_cli(env, "site", "edge-1", "--json").stdout)
    assert detail["acked_seq"] == 20
    assert detail["labels"] == {"tier": "gold"}
    old = (tmp_path / "state" / "admin-password").read_text()
    reset = registry_cli(env, "admin-password")
    assert reset.returncode == 0, reset.stderr
    assert (tmp_path / "state" / "admin-password").read_text() != old
    missing = registry_cli(env, "token", "nope")
    assert missing.returncode == 1
    assert "site_not_found" in missing.stderr


def test_bad_config_is_refused_at_start(tmp_path: Path) -> None:
    env = _env(tmp_path, "mysql://x/y")
    result = registry_cli(env, "sites")
    assert result.returncode == 2  # a usage error: the config is wrong, nothing ran
    assert "bad_database_url" in result.stderr


def test_config_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text('database = "postgresql://reg@db:5433/fleet"\n[serve]\nport = 9000\n')
    cfg = load_config(path, {"TOWERBOX_REGISTRY_SERVE_PORT": "9100"})
    assert cfg.serve.port == 9100
    url = cfg.database_url()
    assert (url.kind, url.user, url.host, url.port, url.dbname) == (
        "postgresql",
        "reg",
        "db",
        5433,
        "fleet",
    )
    socket_url = parse_database_url("postgresql://reg@:5432/fleet?host=/run/pg", tmp_path)
    assert (socket_url.host, socket_url.port) == ("/run/pg", 5432)
    assert load_config(path, {"TOWERBOX_REGISTRY_DATABASE": ""}).database_url().kind == "sqlite"
    path.write_text("[sites]\nonline_intervals = 10\nstale_intervals = 3\n")
    with pytest.raises(Exception, match="stale_intervals"):
        load_config(path, {})


def test_two_workers_on_postgresql_store_each_seq_once(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    port = free_port()
    env = _env(
        tmp_path,
        pg_server.create_database(),
        TOWERBOX_REGISTRY_SERVE_PORT=str(port),
        TOWERBOX_REGISTRY_SERVE_WORKERS="2",
    )
    url = f"http://127.0.0.1:{port}"
    token = msgspec.json.decode(registry_cli(env, "site-create", "s1", "--json").stdout)[
        "enrollment_token"
    ]
    with serve(env, url, tmp_path / "registry.log", False):
        secret = httpx.post(url + "/api/v1/enroll", json={"token": token}).json()["secret"]
        headers = {"Authorization": f"Bearer {secret}", "Content-Encoding": "gzip"}
        bodies = [
            gzip.compress(msgspec.json.encode({"entries": vm_entries(first, 40)}))
            for first in range(1, 600, 20)
        ]

        def send(body: bytes) -> tuple[int, int]:
            """(entries stored, refusals on the way)."""
            # Each thread its own connection, so both workers take some of them.
            with httpx.Client(base_url=url, timeout=30) as client:
                for refused in range(200):
                    resp = client.post("/api/v1/sync/journal", content=body, headers=headers)
                    if resp.status_code == 200:
                        return int(resp.json()["stored"]), refused
                    assert resp.json()["code"] == "sequence_gap", resp.text
                    time.sleep(0.02)
            raise AssertionError("batch never accepted")

        with ThreadPoolExecutor(len(bodies)) as pool:
            results = list(pool.map(send, reversed(bodies)))
        assert sum(stored for stored, _ in results) == 620
        gaps = sum(refused for _, refused in results)
        with httpx.Client(base_url=url, timeout=30) as client:
            password = (tmp_path / "state" / "admin-password").read_text().strip()
            login = client.post(
                "/api/v1/auth/login", json={"username": "admin", "password": password}
            )
            admin = {"Authorization": f"Bearer {login.json()['token']}"}
            summary = client.get("/api/v1/sites/s1/journal/summary", headers=admin).json()
        for _ in range(6):
            # A new connection each time: either worker answers, with the same figures.
            with httpx.Client(base_url=url, timeout=30) as client:
                text = client.get("/metrics", headers=admin).text
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            assert samples[("towerbox_registry_ingested_entries_total", ())] == 620
            assert samples[("towerbox_registry_ingested_batches_total", ())] == len(bodies)
            refusals = ("towerbox_registry_ingest_refusals_total", (("code", "sequence_gap"),))
            assert samples.get(refusals, 0) == gaps
    assert (summary["count"], summary["head"]) == (620, 620)
    workers = (tmp_path / "registry.log").read_text()
    assert "2 worker(s)" in workers


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        # A thread may end between the listing and the read: it has no children then.
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not reaped it yet


def test_workers_end_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    port = free_port()
    env = _env(
        tmp_path, TOWERBOX_REGISTRY_SERVE_PORT=str(port), TOWERBOX_REGISTRY_SERVE_WORKERS="2"
    )
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([TOWERBOX, "registry", "serve"], env=env, stdout=out, stderr=out)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while len(workers := _children(proc.pid)) < 2 or not _answers(url):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # Killed outright, the supervisor cannot stop its workers: they stop themselves.
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 15
        while alive := [pid for pid in workers if _alive(pid)]:
            assert time.monotonic() < deadline, f"workers {alive} outlived their supervisor"
            time.sleep(0.1)
        assert not _answers(url)
    finally:
        proc.kill()
        proc.wait()
        for pid in workers:
            if _alive(pid):  # left by a failed run only; a PID gone may be reused
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
