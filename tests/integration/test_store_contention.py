"""Writers under contention: they wait for SQLite's write lock up to the busy timeout,
and a write that still finds it held answers 503 store_busy, never a 500."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.context import Appliance
from appliance.services.monitor import NodeSnapshot, record_state_changes
from appliance.store import db as state_db
from appliance.store.models import JournalEntry, Vm
from tests.support.appliance import admin_password, api_client, built, login

BUSY_TIMEOUT_MS = 300


@pytest.fixture
def appliance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Appliance]:
    # Every connection the appliance opens (one per thread) waits this long for a lock.
    monkeypatch.setitem(state_db._PRAGMAS, "busy_timeout", BUSY_TIMEOUT_MS)
    app = built(tmp_path)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def other_writer(appliance: Appliance) -> Iterator[sqlite3.Connection]:
    """A second connection (another process, as far as SQLite can tell)."""
    conn = sqlite3.connect(appliance.cfg.db_path, isolation_level=None, check_same_thread=False)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def hold_write_lock(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE meta SET value = value WHERE key = 'journal_next_seq'")


def test_an_api_write_past_the_busy_timeout_is_a_503_store_busy(
    appliance: Appliance, other_writer: sqlite3.Connection
) -> None:
    with api_client(appliance) as client:
        client.headers.update(login(client, "admin", admin_password(appliance.cfg)))
        hold_write_lock(other_writer)  # held for the whole request: past the timeout
        resp: Any = client.post("/api/v1/tenants", json={"name": "acme"})
        assert resp.status_code == 503, resp.text
        assert resp.json()["code"] == "store_busy"
        assert resp.headers["retry-after"] == "1"
        other_writer.execute("COMMIT")
        # Once the other writer is done, the same write goes through.
        assert client.post("/api/v1/tenants", json={"name": "acme"}).status_code == 201


def test_the_monitor_waits_for_a_lock_released_within_the_timeout(
    appliance: Appliance, other_writer: sqlite3.Connection
) -> None:
    for i in range(3):
        Vm.create(
            id=f"id-{i}",
            name=f"vm-{i}",
            spec="{}",
            allocation="{}",
            desired_state="running",
            observed_state="running",
            role="b2b",
        )
    before = JournalEntry.select().count()
    hold_write_lock(other_writer)
    release = threading.Timer(BUSY_TIMEOUT_MS / 3000, other_writer.execute, ("COMMIT",))
    release.start()
    try:
        # Every VM is gone from the (empty) snapshot: three state changes to write,
        # read first, while the other writer still holds the lock.
        assert record_state_changes(NodeSnapshot()) == 3
    finally:
        release.join()
    assert JournalEntry.select().count() == before + 3
    assert {vm.observed_state for vm in Vm.select()} == {"missing"}
