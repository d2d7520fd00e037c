"""registry_sync_rps, registry_p99_ms, registry_ingest_vs_raw, registry_fleet_vms_ms:
the fleet registry under a simulated fleet, on SQLite and then on PostgreSQL.

The registry runs as a real process (`towerbox registry serve`, one uvicorn worker).
SITES sites are created and enrolled over the API, each reports VMS_PER_SITE VMs
(20,000 in all), then every site runs as an async agent for LOAD_S seconds: journal
batches of BATCH entries and heartbeats, paced at OFFERED_RPS for the whole fleet,
over httpx.AsyncClient. Reported:

- registry_sync_rps: requests answered per second during the load phase;
- registry_p99_ms: the 99th percentile of their latency, as the agents saw it;
- registry_ingest_vs_raw: journal rows per second through the API (batches of 1000
  posted back to back, gzip, one site) over rows per second of a raw peewee
  insert_many of the same rows into the same schema, in the same chunks and one
  transaction per 1000 rows;
- registry_fleet_vms_ms: GET /api/v1/fleet/vms answering all 20,000 VMs in one page
  (median of 5), and registry_fleet_filtered_ms for a filtered page.

The same figures follow with a `_pg` suffix for PostgreSQL (a private cluster with
synchronous_commit=off, the durability class of SQLite's WAL with synchronous=NORMAL).
Targets (SQLite): registry_sync_rps >= 500, registry_p99_ms <= 100,
registry_ingest_vs_raw >= 0.5, registry_fleet_vms_ms <= 500. Exit 1 when one is missed.
"""

from __future__ import annotations

import asyncio
import gzip
import multiprocessing
import os
import random
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec

from registry.config import parse_database_url
from registry.store.db import open_database
from registry.store.models import JournalRow, Site
from tests.support.daemon import free_port
from tests.support.postgres import PostgresUnavailable, postgres_server
from towerbox_core.api.versions import NodeVersions
from towerbox_core.wire import Heartbeat, facts_hash

SITES = 200
VMS_PER_SITE = 100
BATCH = 10
LOAD_S = 15.0
OFFERED_RPS = 600
CLIENT_PROCESSES = 2
BULK_BATCHES = 40  # of 1000 entries, for the ingest ratio
TOWERBOX = str(Path(sys.executable).with_name("towerbox"))
TARGETS = {
    "registry_sync_rps": (500.0, "min"),
    "registry_p99_ms": (100.0, "max"),
    "registry_ingest_vs_raw": (0.5, "min"),
    "registry_fleet_vms_ms": (500.0, "max"),
}


def entry(seq: int, vm: int, created: bool) -> dict[str, Any]:
    if created:
        state: dict[str, Any] = {
            "spec": {
                "name": f"vm{vm}",
                "tenant": f"t{vm % 7}",
                "role": "b2b",
                "vcpus": 4,
                "memory_mib": 8192,
            },
            "desired_state": "running",
        }
    else:
        state = {"name": f"vm{vm}", "state": random.choice(("running", "shutoff", "paused"))}
    return {
        "seq": seq,
        "kind": "vm.created" if created else "vm.state",
        "object_type": "vm",
        "object_id": f"{vm:08x}-0000-4000-8000-000000000000",
        "state": state,
        "created_at": "2025-01-01T00:00:00+00:00",
    }


def body(entries: list[dict[str, Any]]) -> bytes:
    return gzip.compress(msgspec.json.encode({"entries": entries}), 1)


@contextmanager
def registry_process(root: Path, database: str, **extra_env: str) -> Iterator[str]:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")},
        "TOWERBOX_REGISTRY_CONFIG": str(root / "absent.toml"),
        "TOWERBOX_REGISTRY_STATE_DIR": str(root / "state"),
        "TOWERBOX_REGISTRY_DATABASE": database,
        "TOWERBOX_REGISTRY_SERVE_PORT": str(port),
        "TOWERBOX_REGISTRY_SERVE_WORKERS": "1",
        "TOWERBOX_REGISTRY_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen([TOWERBOX, "registry", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "registry.log").read_text()[-3000:])
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def enroll_fleet(client: httpx.AsyncClient, admin: dict[str, str]) -> list[dict[str, str]]:
    async def one(i: int) -> dict[str, str]:
        made = await client.post(
            "/api/v1/sites",
            json={"name": f"site{i:04d}", "region": f"r{i % 5}", "labels": {"tier": "gold"}},
            headers=admin,
        )
        made.raise_for_status()
        got = await client.post(
            "/api/v1/enroll", json={"token": made.json()["enrollment_token"], "hostname": "n"}
        )
        got.raise_for_status()
        return {"Authorization": f"Bearer {got.json()['secret']}"}

    sites = []
    for start in range(0, SITES, 50):
        sites += await asyncio.gather(*(one(i) for i in range(start, min(SITES, start + 50))))
    return sites


async def populate(client: httpx.AsyncClient, sites: list[dict[str, str]]) -> None:
    async def one(site: dict[str, str]) -> None:
        entries = [entry(seq, seq - 1, True) for seq in range(1, VMS_PER_SITE + 1)]
        resp = await client.post(
            "/api/v1/sync/journal",
            content=body(entries),
            headers={**site, "Content-Encoding": "gzip"},
        )
        resp.raise_for_status()

    for start in range(0, len(sites), 20):
        await asyncio.gather(*(one(s) for s in sites[start : start + 20]))


def load(url: str, sites: list[dict[str, str]]) -> tuple[float, float, int]:
    """The fleet's agents split over CLIENT_PROCESSES processes, all started at once.

    One Python process cannot drive httpx at the rate one registry worker answers;
    two share the second core with the registry's first.
    """
    shares = [sites[i::CLIENT_PROCESSES] for i in range(CLIENT_PROCESSES)]
    context = multiprocessing.get_context("fork")
    with context.Pool(CLIENT_PROCESSES) as pool:
        results = pool.starmap(_load_share, [(url, share, len(sites)) for share in shares])
    latencies = sorted(lat for lats, _, _ in results for lat in lats)
    elapsed = max(took for _, took, _ in results)
    failures = sum(failed for _, _, failed in results)
    if not latencies:
        return 0.0, float("inf"), failures
    p50, p90, p99 = (latencies[int(len(latencies) * q) - 1] * 1000 for q in (0.5, 0.9, 0.99))
    print(
        f"# latency ms: p50 {p50:.1f}, p90 {p90:.1f}, p99 {p99:.1f}, max {latencies[-1] * 1000:.1f}"
    )
    return len(latencies) / elapsed, p99, failures


def _load_share(
    url: str, sites: list[dict[str, str]], fleet: int
) -> tuple[list[float], float, int]:
    try:
        import uvloop

        return uvloop.run(_agents(url, sites, fleet))
    except ImportError:
        return asyncio.run(_agents(url, sites, fleet))


async def _agents(
    url: str, sites: list[dict[str, str]], fleet: int
) -> tuple[list[float], float, int]:
    """Every site an agent with its own client and connection, paced at its share."""
    latencies: list[float] = []
    failures = 0
    per_site_interval = fleet / OFFERED_RPS
    # As agents send them: the host facts and versions once, then only their hash.
    host = {"hostname": "n", "node": "n", "health": "ok", "backends": ["GPU: simulated"]}
    versions = NodeVersions(towerbox="0.1.0", gpu_driver="550.54.15")
    digest = facts_hash("0.1.0", host, versions)
    full_beat = msgspec.json.encode(Heartbeat("0.1.0", 0, 0, host, digest, versions))
    thin_beat = msgspec.json.encode(Heartbeat("0.1.0", 0, 0, facts_hash=digest))
    rounds = int(LOAD_S / per_site_interval) + 2
    # Bodies are made before the clock starts: the agents' CPU is not the registry's.
    payloads = [
        [
            body(
                [
                    entry(s, random.randrange(VMS_PER_SITE), False)
                    for s in range(first, first + BATCH)
                ]
            )
            for first in range(VMS_PER_SITE + 1, VMS_PER_SITE + 1 + rounds * BATCH, BATCH)
        ]
        for _ in sites
    ]
    # Made before the clock starts too: each client would load the CA bundle otherwise.
    tls = ssl.create_default_context()
    clients = [httpx.AsyncClient(base_url=url, timeout=60, verify=tls) for _ in sites]
    deadline = time.perf_counter() + LOAD_S

    async def agent(index: int, site: dict[str, str]) -> None:
        nonlocal failures
        batches = iter(payloads[index])
        pending = next(batches)
        headers_gzip = {**site, "Content-Encoding": "gzip", "Content-Type": "application/json"}
        headers_json = {**site, "Content-Type": "application/json"}
        facts_held = False
        async with clients[index] as client:
            next_at = time.perf_counter() + random.uniform(0, per_site_interval)
            turn = index
            while True:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                if time.perf_counter() >= deadline:
                    return
                turn += 1
                started = time.perf_counter()
                if turn % 3 == 0:  # a heartbeat for every two journal batches
                    resp = await client.post(
                        "/api/v1/sync/heartbeat",
                        content=thin_beat if facts_held else full_beat,
                        headers=headers_json,
                    )
                    facts_held = resp.status_code == 200 and b"facts_wanted" not in resp.content
                else:
                    resp = await client.post(
                        "/api/v1/sync/journal", content=pending, headers=headers_gzip
                    )
                    if resp.status_code == 200:
                        pending = next(batches)
                latencies.append(time.perf_counter() - started)
                if resp.status_code != 200:
                    failures += 1
                next_at += per_site_interval

    started = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(agent(i, s) for i, s in enumerate(sites)))
    took = time.perf_counter() - started
    print(f"# load generator process: {100 * (time.process_time() - cpu) / took:.0f} % CPU")
    return latencies, took, failures


async def api_ingest_rate(
    client: httpx.AsyncClient, site: dict[str, str]
) -> tuple[float, list[Any]]:
    """Back-to-back batches of 1000 for one site; returns rows/s and the rows sent."""
    resp = await client.get("/api/v1/sync/journal/head", headers=site)
    seq = resp.json()["acked_seq"]
    batches = []
    for _ in range(BULK_BATCHES):
        entries = [
            entry(s, random.randrange(VMS_PER_SITE), False) for s in range(seq + 1, seq + 1001)
        ]
        seq += 1000
        batches.append((entries, body(entries)))
    started = time.perf_counter()
    for _, payload in batches:
        resp = await client.post(
            "/api/v1/sync/journal", content=payload, headers={**site, "Content-Encoding": "gzip"}
        )
        resp.raise_for_status()
    elapsed = time.perf_counter() - started
    return BULK_BATCHES * 1000 / elapsed, [e for entries, _ in batches for e in entries]


def raw_insert_rate(database: str, state_dir: Path, rows: list[dict[str, Any]]) -> float:
    """The same rows, insert_many straight into the registry schema of another database."""
    db = open_database(parse_database_url(database, state_dir))
    site = Site.create(name="raw")
    tuples = [
        (
            site.id,
            r["seq"],
            r["kind"],
            r["object_type"],
            r["object_id"],
            msgspec.json.encode(r["state"]).decode(),
            r["created_at"],
        )
        for r in rows
    ]
    fields = [
        JournalRow.site,
        JournalRow.seq,
        JournalRow.kind,
        JournalRow.object_type,
        JournalRow.object_id,
        JournalRow.state,
        JournalRow.created_at,
    ]
    started = time.perf_counter()
    for start in range(0, len(tuples), 1000):
        with db.atomic():
            chunk = tuples[start : start + 1000]
            for offset in range(0, len(chunk), 400):
                JournalRow.insert_many(chunk[offset : offset + 400], fields=fields).execute()
    elapsed = time.perf_counter() - started
    db.close()
    return len(tuples) / elapsed


async def fleet_query_ms(client: httpx.AsyncClient, admin: dict[str, str], query: str) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        resp = await client.get(f"/api/v1/fleet/vms?{query}", headers=admin)
        resp.raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def run_engine(url: str, root: Path) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=SITES + 10, max_keepalive_connections=SITES + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        password = (root / "state" / "admin-password").read_text().strip()
        login = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": password}
        )
        admin = {"Authorization": f"Bearer {login.json()['token']}"}
        sites = await enroll_fleet(client, admin)
        await populate(client, sites)
        rps, p99, failures = await asyncio.to_thread(load, url, sites)
        total = (await client.get("/api/v1/fleet/vms?limit=1", headers=admin)).json()["total"]
        if total != SITES * VMS_PER_SITE:
            raise RuntimeError(f"fleet holds {total} VMs, expected {SITES * VMS_PER_SITE}")
        fleet_ms = await fleet_query_ms(client, admin, "limit=20000")
        filtered_ms = await fleet_query_ms(client, admin, "state=running&tenant=t3&limit=1000")
        api_rate, rows = await api_ingest_rate(client, sites[0])
    return {
        "rps": rps,
        "p99": p99,
        "failures": failures,
        "fleet": fleet_ms,
        "filtered": filtered_ms,
        "api_rate": api_rate,
        "rows": rows,
    }


def report(result: dict[str, Any], raw_rate: float, suffix: str) -> dict[str, float]:
    figures = {
        "registry_sync_rps": result["rps"],
        "registry_p99_ms": result["p99"],
        "registry_ingest_vs_raw": result["api_rate"] / raw_rate,
        "registry_fleet_vms_ms": result["fleet"],
    }
    units = {
        "registry_sync_rps": "req/s",
        "registry_p99_ms": "ms",
        "registry_ingest_vs_raw": "ratio",
        "registry_fleet_vms_ms": "ms",
    }
    for name, value in figures.items():
        print(f"{name}{suffix}: {value:.2f} {units[name]}")
    print(f"registry_fleet_filtered_ms{suffix}: {result['filtered']:.2f} ms")
    print(f"registry_ingest_rows_per_s{suffix}: {result['api_rate']:.0f} rows/s")
    print(f"registry_raw_rows_per_s{suffix}: {raw_rate:.0f} rows/s")
    print(f"registry_failed_requests{suffix}: {result['failures']} requests")
    return figures


def main() -> int:
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    missed = []
    root = Path(tempfile.mkdtemp(prefix="towerbox-registry-bench-"))
    try:
        with registry_process(root / "sqlite", "") as url:
            result = runner(run_engine(url, root / "sqlite"))
        raw = raw_insert_rate("", root / "raw-sqlite", result["rows"])
        figures = report(result, raw, "")
        if result["failures"]:
            missed.append("registry_failed_requests")
        for name, (target, kind) in TARGETS.items():
            value = figures[name]
            if (kind == "min" and value < target) or (kind == "max" and value > target):
                missed.append(name)
        try:
            with postgres_server(durable=True) as pg:
                with registry_process(root / "pg", pg.create_database("bench")) as url:
                    result = runner(run_engine(url, root / "pg"))
                raw = raw_insert_rate(pg.create_database("raw"), root / "raw-pg", result["rows"])
                report(result, raw, "_pg")
        except PostgresUnavailable as err:
            print(f"# PostgreSQL figures skipped: {err}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if missed:
        print(f"# targets missed: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
