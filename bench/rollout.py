"""rollout_2000_sites_s and rollout_halt_sites_exposed: staged rollouts over a
simulated fleet of 2,000 sites.

The registry runs as a real process (`towerbox registry serve`, one worker, SQLite)
with a heartbeat interval of HEARTBEAT_S. The sites are written into its database
before it starts (enrollment is not what is measured here); then every site runs as
an async agent (plain HTTP/1.1 keep-alive over asyncio streams) in CLIENT_PROCESSES
processes: a heartbeat every
HEARTBEAT_S, the document fetched when the index names a new ETag, and a
`desired.applied` journal entry for it (or `desired.rejected` from the sites that
reject it).

- rollout_2000_sites_s: a document rolled to every site through the default waves
  (canary 1, then 5 %, 25 %, 100 %) with a soak of 0; each wave's seconds follow.
  Target: each wave within 3 heartbeat intervals.
- rollout_halt_sites_exposed: a second document, rolled with the default
  thresholds, that 10 % of the sites reject: every tenth site in name order, so each
  wave holds its tenth of them. The sites that fetched it before the rollout halted.
  Target: at most the canary plus the first wave.
- The same with the failing tenth a seeded random sample is printed as a comment,
  not held to the target: with a tenth of the fleet failing, the default threshold of
  10 % is itself a tenth, and whether a wave of ~100 sites crosses it is a coin toss
  (docs/rollouts.md says so; an operator who wants such a fleet caught sets
  failure_pct lower).
Exit 1 when a target is missed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import random
import secrets
import sys
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.registry_load import registry_process
from registry.config import parse_database_url
from registry.store.db import open_database
from registry.store.models import Site, SiteLabel, now_ms
from towerbox_core.secret_files import hash_token

SITES = 2000
HEARTBEAT_S = 2.0
CLIENT_PROCESSES = 2
REJECTING = 0.10
SEED = 1
GROUP = "tier=bench"
ROLLOUT_TIMEOUT_S = 300.0
ONLINE_TIMEOUT_S = 60.0
BEAT = {"agent_version": "bench", "appliance_head": 0, "queued": 0}


def make_fleet(state_dir: Path) -> list[str]:
    """SITES enrolled sites labelled for GROUP, straight into the database; their secrets."""
    db = open_database(parse_database_url("", state_dir))
    secrets_ = [f"tbs_{secrets.token_urlsafe(32)}" for _ in range(SITES)]
    with db.atomic():
        for start in range(0, SITES, 500):
            rows = [
                {
                    "name": f"site{i:04d}",
                    "labels": '{"tier": "bench"}',
                    "secret_hash": hash_token(secrets_[i]),
                    "enrolled_at": now_ms(),
                }
                for i in range(start, min(SITES, start + 500))
            ]
            Site.insert_many(rows).execute()
        ids = [s.id for s in Site.select(Site.id).order_by(Site.name)]
        SiteLabel.insert_many(
            [{"site": site_id, "key": "tier", "value": "bench"} for site_id in ids]
        ).execute()
    db.close()
    return secrets_


def _agents(
    url: str,
    share: list[tuple[int, str]],
    rejecting: dict[str, set[int]],
    stop: Event,
    results: multiprocessing.Queue[dict[int, list[int]]],
) -> None:
    """One process's agents until ``stop``; per document version, the sites that
    fetched it, put on ``results``."""
    import uvloop

    results.put(uvloop.run(_run_agents(url, share, rejecting, stop)))


class _Conn:
    """One site's keep-alive HTTP/1.1 connection, spoken directly over asyncio streams.

    httpx spends milliseconds of CPU per request: 2,000 agents on two shared cores
    then queue for the client's CPU, not for the registry, and a wave seems to take
    many heartbeats. This costs a fraction of that, so what is measured is the registry.
    """

    def __init__(self, host: str, port: int, secret: str) -> None:
        self._addr = (host, port)
        self._head = f"Host: {host}\r\nAuthorization: Bearer {secret}\r\n"
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        for attempt in (1, 2):
            try:
                return await self._call(method, path, body)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                self.close()  # the server closed an idle connection: once more, afresh
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _call(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(*self._addr)
        reader, writer = self._streams
        payload = b"" if body is None else msgspec.json.encode(body)
        head = f"{method} {path} HTTP/1.1\r\n{self._head}Content-Length: {len(payload)}\r\n"
        if payload:
            head += "Content-Type: application/json\r\n"
        writer.write(head.encode() + b"\r\n" + payload)
        await writer.drain()
        status = int((await reader.readuntil(b"\r\n")).split()[1])
        length = 0
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await reader.readexactly(length)
        return status, msgspec.json.decode(data) if data else None

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _run_agents(
    url: str, share: list[tuple[int, str]], rejecting: dict[str, set[int]], stop: Event
) -> dict[int, list[int]]:
    fetched: dict[int, list[int]] = {}
    beats = [0]
    began = time.perf_counter()
    host, port = url.removeprefix("http://").split(":")

    async def agent(index: int, secret: str) -> None:
        conn = _Conn(host, int(port), secret)
        etag = None
        seq = 0
        await asyncio.sleep(random.uniform(0, HEARTBEAT_S))
        while not stop.is_set():
            started = time.perf_counter()
            try:
                status, beat = await conn.call("POST", "/api/v1/sync/heartbeat", BEAT)
                beats[0] += 1
                for item in beat["desired"] if status == 200 else []:
                    if item["etag"] == etag:
                        continue
                    _, doc = await conn.call("GET", f"/api/v1/sync/desired/{item['kind']}")
                    fetched.setdefault(doc["version"], []).append(index)
                    refuse = index in rejecting.get(doc["document"].get("bench"), ())
                    result = "rejected" if refuse else "applied"
                    state = {"version": doc["version"], "etag": doc["etag"], "result": result}
                    entry = {
                        "seq": seq + 1,
                        "kind": f"desired.{result}",
                        "object_type": "desired",
                        "object_id": item["kind"],
                        "state": state,
                    }
                    sent, _ = await conn.call("POST", "/api/v1/sync/journal", {"entries": [entry]})
                    if sent == 200:
                        seq += 1
                        etag = item["etag"]
            except (OSError, asyncio.IncompleteReadError, ValueError):
                pass  # the next heartbeat tries again, as an agent does
            await asyncio.sleep(max(0.0, HEARTBEAT_S - (time.perf_counter() - started)))
        conn.close()

    await asyncio.gather(*(agent(i, s) for i, s in share))
    rate = beats[0] / (time.perf_counter() - began)
    print(f"# agent process: {rate:.0f} heartbeats/s for {len(share)} sites", flush=True)
    return fetched


def _seconds(start: str | None, end: str | None) -> float:
    if start is None or end is None:
        return float("inf")
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def _until(op: httpx.Client, rollout_id: int, states: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + ROLLOUT_TIMEOUT_S
    while time.monotonic() < deadline:
        view: dict[str, Any] = op.get(f"/api/v1/rollouts/{rollout_id}").json()
        if view["state"] in states:
            return view
        time.sleep(0.2)
    raise RuntimeError(f"rollout {rollout_id} not {states} within {ROLLOUT_TIMEOUT_S} s: {view}")


def _all_online(op: httpx.Client) -> None:
    """Until every site has heartbeated within the online bound."""
    started = time.monotonic()
    online = 0
    while time.monotonic() - started < ONLINE_TIMEOUT_S:
        online = op.get("/api/v1/sites", params={"status": "online", "limit": 1}).json()["total"]
        if online == SITES:
            print(f"# all {SITES} sites online after {time.monotonic() - started:.1f} s")
            return
        time.sleep(0.5)
    raise RuntimeError(f"only {online} of {SITES} sites online")


def _rollout(op: httpx.Client, document: dict[str, Any], **options: Any) -> dict[str, Any]:
    made = op.post(
        "/api/v1/rollouts",
        json={"group": GROUP, "kind": "gpu", "document": document, "soak_s": 0, **options},
    )
    made.raise_for_status()
    view: dict[str, Any] = made.json()
    return view


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        root = Path(tmp)
        state_dir = root / "state"
        fleet = make_fleet(state_dir)
        # Sites are named in index order, so index order is the waves' order.
        every_tenth = set(range(int(1 / REJECTING) // 2, SITES, int(1 / REJECTING)))
        sampled = set(random.Random(SEED).sample(range(SITES), int(SITES * REJECTING)))
        rejecting = {"halt": every_tenth, "halt-random": sampled}
        env = {
            "TOWERBOX_REGISTRY_SITES_HEARTBEAT_S": str(HEARTBEAT_S),
            # Every agent keeps its connection open, as a real one does.
            "TOWERBOX_REGISTRY_SERVE_MAX_CONNECTIONS": str(4 * SITES),
        }
        with registry_process(root, "", **env) as url:
            token = (state_dir / "cli-token").read_text().strip()
            op = httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            context = multiprocessing.get_context("fork")
            stop = context.Event()
            results: multiprocessing.Queue[dict[int, list[int]]] = context.Queue()
            sites = list(enumerate(fleet))
            workers = [
                context.Process(
                    target=_agents, args=(url, sites[i::CLIENT_PROCESSES], rejecting, stop, results)
                )
                for i in range(CLIENT_PROCESSES)
            ]
            for worker in workers:
                worker.start()
            try:
                _all_online(op)
                started = time.perf_counter()
                done = _rollout(op, {"bench": "go"})
                done = _until(op, done["id"], ("completed", "halted"))
                total = time.perf_counter() - started
                halt = _rollout(op, {"bench": "halt"})
                halt = _until(op, halt["id"], ("halted", "completed"))
                time.sleep(HEARTBEAT_S)  # fetches in flight at the halt are counted too
                op.post(f"/api/v1/rollouts/{halt['id']}/abort").raise_for_status()
                sampled_halt = _rollout(op, {"bench": "halt-random"})
                sampled_halt = _until(op, sampled_halt["id"], ("halted", "completed"))
                time.sleep(HEARTBEAT_S)
            finally:
                stop.set()
            fetched: dict[int, set[int]] = {}
            for _ in workers:
                for version, indexes in results.get(timeout=120).items():
                    fetched.setdefault(version, set()).update(indexes)
            for worker in workers:
                worker.join(timeout=30)
            op.close()
        warnings = [
            line for line in (root / "registry.log").read_text().splitlines() if "WARNING" in line
        ]
        for line in warnings[-8:]:
            print(f"# registry: {line}")
    return report(done, total, halt, sampled_halt, fetched)


def report(
    done: dict[str, Any],
    total: float,
    halt: dict[str, Any],
    sampled_halt: dict[str, Any],
    fetched: dict[int, set[int]],
) -> int:
    healthy = sum(w["healthy"] for w in done["waves"])
    # Every site took part: a site deferred as offline would make a wave look quick.
    ok = done["state"] == "completed" and healthy == SITES
    print(f"rollout_2000_sites_s: {total:.1f} s")
    print(f"# {healthy} of {SITES} sites applied and healthy")
    wave_target = 3 * HEARTBEAT_S
    for wave in done["waves"]:
        took = _seconds(wave["started_at"], wave["finished_at"])
        ok = ok and took <= wave_target
        print(f"rollout_wave_{wave['wave']}_s: {took:.1f} s ({wave['sites']} sites)")
    print(f"rollout_wave_target_s: {wave_target:.1f} s (each wave at most)")
    print(f"# heartbeat interval {HEARTBEAT_S:g} s, {SITES / HEARTBEAT_S:.0f} heartbeats/s offered")
    exposed = len(fetched.get(halt["version"], set()))
    allowed = sum(w["sites"] for w in halt["waves"][:2])
    print(f"rollout_halt_sites_exposed: {exposed} sites")
    print(f"rollout_halt_target_sites: {allowed} sites (canary + first wave)")
    print(f"# halt: {halt['state']}, {halt['reason']}")
    ok = ok and halt["state"] == "halted" and exposed <= allowed
    sampled = len(fetched.get(sampled_halt["version"], set()))
    print(
        f"# failing tenth a random sample: {sampled} sites exposed, {sampled_halt['state']}"
        f" ({sampled_halt['reason']}); not held to the target"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
