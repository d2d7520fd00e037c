"""A database connection lost under a request (a PostgreSQL restart or failover): the
client gets 503 store_unavailable with Retry-After, never a 500, and the next request
after the fault clears is served.

The fault is psycopg2's own error class, raised where a dropped connection raises it
(the store call, or the cursor under every statement) and wrapped by peewee as peewee
wraps it; the last test drops the registry's real PostgreSQL connections.
"""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any

import msgspec
import peewee
import psycopg2  # type: ignore[import-untyped]
import pytest

# How peewee turns the driver's errors into its own, as its queries raise them.
from peewee import __exception_wrapper__ as _peewee_wraps  # type: ignore[attr-defined]

from registry.context import build_registry
from registry.rollout_ticker import RolloutTicker
from registry.store import sql
from tests.registry.fleetapi import Api, api_for, make_config, vm_entries

# What psycopg2 raises on a connection the server closed, and then on its next use.
_LOST = {
    "operational": lambda: psycopg2.OperationalError(
        "server closed the connection unexpectedly\n\tThis probably means the server "
        "terminated abnormally\n\tbefore or while processing the request.\n"
    ),
    "interface": lambda: psycopg2.InterfaceError("connection already closed"),
}


class Fault:
    """Raises the lost-connection error while it is on: as psycopg2 raises it (a
    cursor), or as peewee wraps it (a query, a store call)."""

    def __init__(self, kind: str, wrapped: bool) -> None:
        self.kind = kind
        self.wrapped = wrapped
        self.on = True
        self.raised = 0

    def check(self) -> None:
        if not self.on:
            return
        self.raised += 1
        if not self.wrapped:
            raise _LOST[self.kind]()
        with _peewee_wraps:
            raise _LOST[self.kind]()


def _assert_store_unavailable(resp: Any) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "5"
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert (problem["status"], problem["code"]) == (503, "store_unavailable")


def _batch(entries: list[dict[str, Any]]) -> bytes:
    return gzip.compress(msgspec.json.encode({"entries": entries, "compacted_through": 0}))


@pytest.mark.parametrize("kind", sorted(_LOST))
def test_a_route_whose_store_call_loses_the_connection_answers_503(
    sqlite_api: Api, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    api = sqlite_api
    fleet = api.registry.fleet
    vms = fleet.vms
    fault = Fault(kind, wrapped=True)

    def failing_vms(*args: Any) -> Any:
        fault.check()
        return vms(*args)

    monkeypatch.setattr(fleet, "vms", failing_vms)
    _assert_store_unavailable(api.client.get("/api/v1/fleet/vms", headers=api.admin))
    assert fault.raised == 1
    fault.on = False
    resp = api.client.get("/api/v1/fleet/vms", headers=api.admin)
    assert resp.status_code == 200, resp.text
    assert resp.json()["total"] == 0


@pytest.fixture
def cursor_fault(api: Api, monkeypatch: pytest.MonkeyPatch) -> Fault:
    """Every statement fails as on a dropped connection, the auth lookup included."""
    db = api.registry.db
    cursor = db.cursor
    fault = Fault("operational", wrapped=False)

    def failing_cursor(*args: Any) -> Any:
        fault.check()
        return cursor(*args)

    monkeypatch.setattr(db, "cursor", failing_cursor)
    return fault


def test_requests_while_the_database_is_gone_answer_503_and_store_nothing(
    api: Api, cursor_fault: Fault
) -> None:
    cursor_fault.on = False
    site = api.enroll("s1")
    cursor_fault.on = True
    _assert_store_unavailable(api.client.get("/api/v1/sites", headers=api.admin))
    entries = vm_entries(1, 8)
    _assert_store_unavailable(api.post_batch(site, entries))
    _assert_store_unavailable(api.client.get("/api/v1/sync/journal/head", headers=site))
    beat = {"agent_version": "0.1.0", "appliance_head": 8, "queued": 8}
    _assert_store_unavailable(api.client.post("/api/v1/sync/heartbeat", json=beat, headers=site))
    assert cursor_fault.raised >= 4
    cursor_fault.on = False
    # The agent resends what was not acked: all of it is stored, once.
    resp = api.post_batch(site, entries)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"acked_seq": 8, "stored": 8}
    listed = api.client.get("/api/v1/sites", headers=api.admin)
    assert listed.status_code == 200, listed.text


def test_the_store_raises_peewees_error_for_a_lost_connection(
    api: Api, cursor_fault: Fault
) -> None:
    """The hand-written statements fail as model queries do: the rollout ticker, which
    retries peewee's errors at its next tick, is not ended by the driver's."""
    with pytest.raises(peewee.OperationalError) as raised:
        sql.fetchall("SELECT 1", ())
    assert isinstance(raised.value.__context__, psycopg2.OperationalError)


def test_the_rollout_ticker_keeps_ticking_through_a_lost_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = build_registry(make_config(tmp_path, TOWERBOX_REGISTRY_ROLLOUTS_TICK_S="0.01"))
    try:
        fault = Fault("operational", wrapped=False)
        cursor = registry.db.cursor

        def failing_cursor(*args: Any) -> Any:
            fault.check()
            return cursor(*args)

        monkeypatch.setattr(registry.db, "cursor", failing_cursor)

        async def run() -> bool:
            ticker = RolloutTicker(registry)
            await ticker.start()
            try:
                for _ in range(200):
                    await asyncio.sleep(0.01)
                    if fault.raised >= 3:
                        break
                fault.on = False
                await asyncio.sleep(0.05)
                return ticker._task is not None and not ticker._task.done()
            finally:
                await ticker.stop()

        assert asyncio.run(run())
        assert fault.raised >= 3
    finally:
        registry.db.close()


@pytest.mark.postgres
def test_connections_the_postgresql_server_drops_answer_503_then_reconnect(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("pg_server")
    url = server.create_database()
    registry = build_registry(make_config(tmp_path, url))
    try:
        for api in api_for(registry):
            site = api.enroll("s1")
            assert api.post_batch(site, vm_entries(1, 5)).status_code == 200
            dbname = url.rsplit("/", 1)[1]
            admin = psycopg2.connect(
                host="127.0.0.1", port=server.port, user="postgres", dbname="postgres"
            )
            try:
                admin.autocommit = True
                with admin.cursor() as cur:
                    cur.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        (dbname,),
                    )
                    assert cur.fetchall(), "the registry held no connection"
            finally:
                admin.close()
            # Each worker thread's connection fails once, and is then opened afresh.
            answers = []
            for _ in range(20):
                resp = api.post_batch(site, vm_entries(6, 5))
                answers.append(resp.status_code)
                if resp.status_code == 200:
                    assert resp.json()["acked_seq"] == 10
                    break
                _assert_store_unavailable(resp)
            assert answers[0] == 503 and answers[-1] == 200, answers
            head = api.client.get("/api/v1/sync/journal/head", headers=site)
            assert head.status_code == 200 and head.json()["acked_seq"] == 10
    finally:
        registry.db.close()
