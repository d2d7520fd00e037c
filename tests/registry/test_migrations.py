"""Registry schema migrations on a database made by an older registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from registry.config import DatabaseUrl, parse_database_url
from registry.context import build_registry
from registry.store import db as store_db
from registry.store import ingest as store_ingest
from registry.store.models import (
    BlobRow,
    JournalArchiveRow,
    JournalRow,
    ObjectRow,
    SchemaVersion,
    Site,
    SiteEpoch,
    tuples,
)
from tests.registry.fleetapi import api_for, make_config, vm_entries
from towerbox_core.wire import JournalBatch


def test_schema_2_adds_the_journal_actor_and_keeps_old_rows(tmp_path: Path) -> None:
    url = DatabaseUrl("sqlite", path=str(tmp_path / "registry.db"))
    old = store_db.open_database(url)
    old.execute_sql("ALTER TABLE journal DROP COLUMN actor")  # type: ignore[no-untyped-call]
    old.execute_sql("UPDATE schema_version SET version = 1")  # type: ignore[no-untyped-call]
    old.close()
    db = store_db.open_database(url)
    try:
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION
        assert "actor" in {c.name for c in db.get_columns("journal")}
        assert JournalRow.select().count() == 0
    finally:
        db.close()


def test_schema_4_adds_the_blob_table_to_an_older_database(tmp_path: Path) -> None:
    url = DatabaseUrl("sqlite", path=str(tmp_path / "registry.db"))
    old = store_db.open_database(url)
    old.execute_sql("DROP TABLE blob")  # type: ignore[no-untyped-call]
    old.execute_sql("UPDATE schema_version SET version = 3")  # type: ignore[no-untyped-call]
    old.close()
    db = store_db.open_database(url)
    try:
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION
        assert BlobRow.select().count() == 0
    finally:
        db.close()


def _url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> DatabaseUrl:
    if engine == "postgresql":
        return parse_database_url(request.getfixturevalue("pg_server").create_database(), tmp_path)
    return DatabaseUrl("sqlite", path=str(tmp_path / "registry.db"))


def test_schema_5_takes_the_journal_head_from_the_last_heartbeat(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _url(engine, tmp_path, request)
    old = store_db.open_database(url)
    beat = '{"agent_version":"1","appliance_head":70,"queued":3,"host":{}}'
    Site.insert(name="beat", heartbeat=beat, acked_seq=60).execute()
    Site.insert(name="quiet").execute()
    huge = '{"agent_version":"1","appliance_head":18446744073709551616,"queued":0,"host":{}}'
    Site.insert(name="huge", heartbeat=huge).execute()
    for column in ("reported_head", "ingested_entries", "ingested_batches"):
        old.execute_sql(f"ALTER TABLE site DROP COLUMN {column}")  # type: ignore[no-untyped-call]
    old.execute_sql("UPDATE schema_version SET version = 4")  # type: ignore[no-untyped-call]
    old.close()
    db = store_db.open_database(url)
    try:
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION
        heads = {s.name: (s.reported_head, s.acked_seq, s.ingested_entries) for s in Site.select()}
        assert heads == {"beat": (70, 60, 0), "quiet": (None, 0, 0), "huge": (None, 0, 0)}
    finally:
        db.close()


def test_schema_7_adds_epochs_and_identities_and_keeps_sites(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _url(engine, tmp_path, request)
    old = store_db.open_database(url)
    Site.insert(name="kept", acked_seq=7).execute()
    for table in ("journal_archive", "site_epoch", "site_identity", "provisioning_credential"):
        old.execute_sql(f"DROP TABLE {table}")  # type: ignore[no-untyped-call]
    old.execute_sql("ALTER TABLE site DROP COLUMN epoch")  # type: ignore[no-untyped-call]
    before = store_db.MIGRATIONS.index(store_db._v7_enrollment_epochs)
    SchemaVersion.update(version=before).execute()
    old.close()
    db = store_db.open_database(url)
    try:
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION
        kept = Site.get(Site.name == "kept")
        assert (kept.epoch, kept.acked_seq) == (1, 7)
        assert SiteEpoch.select().count() == JournalArchiveRow.select().count() == 0
    finally:
        db.close()


def test_schema_8_adds_the_version_columns_and_takes_the_agents_from_heartbeats(
    tmp_path: Path,
) -> None:
    url = DatabaseUrl("sqlite", path=str(tmp_path / "registry.db"))
    old = store_db.open_database(url)
    beat = '{"agent_version":"0.1.0","appliance_head":7,"queued":0,"host":{"node":"n"}}'
    Site.insert(name="beat", heartbeat=beat).execute()
    odd = '{"agent_version":"0.1 beta","appliance_head":7,"queued":0}'
    Site.insert(name="odd", heartbeat=odd).execute()
    Site.insert(name="quiet").execute()
    columns = ("towerbox_version", "agent_version", "gpu_driver_version", "vgpu_manager_version")
    for column in columns:
        old.execute_sql(f"DROP INDEX site_{column}")  # type: ignore[no-untyped-call]
    for column in ("host_facts", "facts_hash", *columns):
        old.execute_sql(f"ALTER TABLE site DROP COLUMN {column}")  # type: ignore[no-untyped-call]
    before = store_db.MIGRATIONS.index(store_db._v8_site_versions)
    old.execute_sql("UPDATE schema_version SET version = ?", (before,))  # type: ignore[no-untyped-call]
    old.close()
    db = store_db.open_database(url)
    try:
        assert store_db.current_version(db) == store_db.SCHEMA_VERSION
        indexes = {i.name for i in db.get_indexes("site")}
        assert {f"site_{c}" for c in columns} <= indexes
        agents = {s.name: s.agent_version for s in Site.select()}
        assert agents == {"beat": "0.1.0", "odd": None, "quiet": None}
        assert Site.get(Site.name == "beat").host_facts is None  # read from the heartbeat
    finally:
        db.close()


def _entry(seq: int, kind: str, object_id: str, state: Any, object_type: str = "vm") -> Any:
    return {
        "seq": seq,
        "kind": kind,
        "object_type": object_type,
        "object_id": object_id,
        "state": state,
        "created_at": f"2025-01-01T00:00:{seq:02d}+00:00",
    }


def _created(seq: int, vm: str) -> Any:
    spec = {"name": vm, "tenant": "acme", "role": "b2b", "vcpus": 2}
    return _entry(seq, "vm.created", vm, {"spec": spec, "desired_state": "running"})


def _drift(seq: int, kind: str, vm: str) -> Any:
    return _entry(seq, kind, vm, {"name": vm, "detail": "what the reconciler saw"})


# A site's journal as its node sent it, batch by batch: the reconciler's drift reports
# after deletes, on a domain the node never had, and on live VMs.
_DRIFTED_BATCHES = [
    [
        *(_created(seq, f"vm-{seq - 1}") for seq in range(1, 5)),
        _entry(5, "vnet.created", "net-a", {"name": "net-a", "vlan": 10}, "vnet"),
        _entry(6, "vm.state", "vm-0", {"name": "vm-0", "state": "running"}),
    ],
    # The delete and the report in one batch, and in two.
    [
        _entry(7, "vm.deleted", "vm-1", None),
        _drift(8, "drift.unknown_domain", "vm-1"),
        _entry(9, "vm.deleted", "vm-2", None),
    ],
    [_drift(10, "drift.unknown_domain", "vm-2")],
    [_drift(11, "drift.unknown_domain", "never-known")],
    # A report as a live VM's last entry, and one a later change merged onto.
    [_drift(12, "drift.domain_missing", "vm-0")],
    [
        _drift(13, "drift.domain_missing", "vm-3"),
        _entry(14, "vm.state", "vm-3", {"name": "vm-3", "state": "running"}),
    ],
    [_entry(15, "desired.applied", "catalog", {"version": 2, "result": "applied"}, "desired")],
]


def _ingest(site: str, batches: list[list[Any]]) -> None:
    site_id = Site.insert(name=site).execute()
    for entries in batches:
        batch = msgspec.convert({"entries": entries}, JournalBatch)
        store_ingest.ingest(int(site_id), batch, contact_ms=0)


def _objects(site: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    query = (
        ObjectRow.select(
            ObjectRow.object_type,
            ObjectRow.object_id,
            ObjectRow.state,
            ObjectRow.seq,
            ObjectRow.as_of,
            ObjectRow.name,
            ObjectRow.status,
            ObjectRow.tenant,
            ObjectRow.role,
        )
        .join(Site)
        .where(Site.name == site)
    )
    return {(row[0], row[1]): row[2:] for row in tuples(query)}


def _journal() -> list[tuple[Any, ...]]:
    return list(tuples(JournalRow.select().order_by(JournalRow.site, JournalRow.seq)))


def test_schema_9_removes_ghost_vms_and_drift_detail_that_reports_were_folded_into(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = ""
    if engine == "postgresql":
        database = request.getfixturevalue("pg_server").create_database()
    cfg = make_config(tmp_path, database)
    old = store_db.open_database(cfg.database_url())
    with monkeypatch.context() as before_the_fix:
        before_the_fix.setattr(store_ingest, "_REPORT_PREFIXES", ())  # reports folded
        _ingest("drifted", _DRIFTED_BATCHES)
        _ingest("other", [vm_entries(1, 6, vms=3)])
    ghosts = {k: v[3:] for k, v in _objects("drifted").items() if k[1] in ("vm-1", "vm-2")}
    # What the fold before the fix stored: named VMs without a state, tenant or role.
    assert ghosts == {("vm", "vm-1"): ("vm-1", None, None, None)} | {
        ("vm", "vm-2"): ("vm-2", None, None, None)
    }
    assert ("vm", "never-known") in _objects("drifted")
    assert "detail" in msgspec.json.decode(_objects("drifted")[("vm", "vm-3")][0])
    other = _objects("other")
    journal = _journal()
    SchemaVersion.update(
        version=store_db.MIGRATIONS.index(store_db._v9_unfold_drift_reports)
    ).execute()
    old.close()

    registry = build_registry(cfg)  # migrates
    try:
        assert store_db.current_version(registry.db) == store_db.SCHEMA_VERSION
        migrated = _objects("drifted")
        assert sorted(migrated) == [
            ("desired", "catalog"),
            ("vm", "vm-0"),
            ("vm", "vm-3"),
            ("vnet", "net-a"),
        ]
        state, seq, *_, status, tenant, role = migrated[("vm", "vm-0")]
        assert msgspec.json.decode(state) == {
            "spec": {"name": "vm-0", "tenant": "acme", "role": "b2b", "vcpus": 2},
            "desired_state": "running",
            "name": "vm-0",
            "state": "running",
        }
        assert (seq, status, tenant, role) == (6, "running", "acme", "b2b")
        vm3 = msgspec.json.decode(migrated[("vm", "vm-3")][0])
        assert "detail" not in vm3 and vm3["state"] == "running"
        assert migrated[("vm", "vm-3")][1] == 14
        # The other site (the ghost's object id among its live VMs) and the journal,
        # reports included, are as they were.
        assert _objects("other") == other
        assert _journal() == journal
        # The fleet views count from the objects: the ghosts are gone from them too.
        for api in api_for(registry):
            vms = api.client.get("/api/v1/fleet/vms", headers=api.admin).json()
            assert vms["total"] == 5
            assert [(v["site"], v["id"], v["state"]) for v in vms["vms"]] == [
                ("drifted", "vm-0", "running"),
                ("drifted", "vm-3", "running"),
                ("other", "vm-0", "shutoff"),
                ("other", "vm-1", "shutoff"),
                ("other", "vm-2", "running"),
            ]
        # Idempotent: once more changes nothing.
        with registry.db.atomic():
            store_db._v9_unfold_drift_reports(registry.db)
        assert _objects("drifted") == migrated
        # Exactly what the fold stores now for the same journal, batch by batch.
        _ingest("fresh", _DRIFTED_BATCHES)
        assert _objects("fresh") == migrated
    finally:
        registry.db.close()
