"""Journal ingest over the API, on SQLite and on a real PostgreSQL: idempotent by
(site, seq), all or nothing, and refusing every kind of bad batch with a code."""

from __future__ import annotations

import gzip
import threading
from typing import Any

import msgspec
import pytest

from registry.store.ingest import ingest
from registry.store.models import ConflictRow, JournalRow, ObjectRow, Site
from tests.registry.fleetapi import Api, vm_entries
from towerbox_core.wire import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    JournalBatch,
    WireEntry,
    journal_checksum,
)


def counts() -> tuple[int, int, int]:
    return JournalRow.select().count(), ObjectRow.select().count(), ConflictRow.select().count()


def head(api: Api, site: dict[str, str]) -> int:
    resp = api.client.get("/api/v1/sync/journal/head", headers=site)
    assert resp.status_code == 200, resp.text
    return int(resp.json()["acked_seq"])


def test_batches_store_in_order_and_answer_the_head(api: Api) -> None:
    site = api.enroll("s1")
    first = api.post_batch(site, vm_entries(1, 50))
    assert first.status_code == 200, first.text
    assert first.json() == {"acked_seq": 50, "stored": 50}
    second = api.post_batch(site, vm_entries(51, 30))
    assert second.json() == {"acked_seq": 80, "stored": 30}
    assert head(api, site) == 80
    summary = api.client.get("/api/v1/sites/s1/journal/summary", headers=api.admin).json()
    sent = [msgspec.convert(e, WireEntry) for e in vm_entries(1, 80)]
    assert summary == {"site": "s1", "count": 80, "head": 80, "checksum": journal_checksum(sent)}


def test_replay_is_ignored_and_overlap_stores_only_the_new(api: Api) -> None:
    site = api.enroll("s1")
    api.post_batch(site, vm_entries(1, 20))
    before = counts()
    replay = api.post_batch(site, vm_entries(1, 20))
    assert replay.json() == {"acked_seq": 20, "stored": 0}
    assert counts() == before
    overlap = api.post_batch(site, vm_entries(11, 20))  # 11..30: ten held, ten new
    assert overlap.json() == {"acked_seq": 30, "stored": 10}
    assert JournalRow.select().count() == 30


def test_replay_ignores_key_order_and_spacing(api: Api) -> None:
    site = api.enroll("s1")
    entry = {"seq": 1, "kind": "k", "object_type": "t", "object_id": "o", "state": {"a": 1, "b": 2}}
    api.post_batch(site, [entry])
    reordered = {**entry, "state": {"b": 2, "a": 1}}
    assert api.post_batch(site, [reordered]).json() == {"acked_seq": 1, "stored": 0}


def test_same_seq_with_other_content_is_a_conflict_and_stores_nothing(api: Api) -> None:
    site = api.enroll("s1")
    api.post_batch(site, vm_entries(1, 10))
    before = counts()
    changed = vm_entries(1, 15)
    changed[4]["state"] = {"name": "vm-0", "state": "crashed"}
    resp = api.post_batch(site, changed)
    assert resp.status_code == 409
    assert resp.json()["code"] == "journal_conflict"
    assert resp.json()["seq"] == 5
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert counts() == before
    assert head(api, site) == 10


def test_actors_are_stored_served_and_part_of_the_checksum(api: Api) -> None:
    site = api.enroll("s1")
    entries = vm_entries(1, 4)
    entries[0]["actor"] = {"user": "acme-admin", "tenant": "acme"}
    entries[1]["actor"] = {"user": "ci", "token": "deploy", "tenant": "acme"}
    entries[2]["actor"] = {"job": "monitor"}  # entries[3]: from before actors, none
    assert api.post_batch(site, entries).json() == {"acked_seq": 4, "stored": 4}
    page = api.client.get("/api/v1/sites/s1/journal", headers=api.admin).json()
    assert [e.get("actor") for e in page["entries"]] == [
        {"user": "acme-admin", "tenant": "acme"},
        {"user": "ci", "token": "deploy", "tenant": "acme"},
        {"job": "monitor"},
        None,
    ]
    summary = api.client.get("/api/v1/sites/s1/journal/summary", headers=api.admin).json()
    sent = [msgspec.convert(e, WireEntry) for e in entries]
    assert summary["checksum"] == journal_checksum(sent)
    unsigned = [msgspec.convert({**e, "actor": None}, WireEntry) for e in entries]
    assert summary["checksum"] != journal_checksum(unsigned)
    # The same seq replayed with another actor is another history, not a replay.
    forged = [dict(e) for e in entries]
    forged[0]["actor"] = {"user": "admin"}
    resp = api.post_batch(site, forged)
    assert resp.status_code == 409
    assert (resp.json()["code"], resp.json()["seq"]) == ("journal_conflict", 1)
    assert api.post_batch(site, entries).json() == {"acked_seq": 4, "stored": 0}


def test_gap_is_refused_with_the_expected_seq(api: Api) -> None:
    site = api.enroll("s1")
    api.post_batch(site, vm_entries(1, 10))
    before = counts()
    resp = api.post_batch(site, vm_entries(12, 5))
    assert resp.status_code == 409
    assert resp.json()["code"] == "sequence_gap"
    assert resp.json()["expected_seq"] == 11
    inner = vm_entries(11, 5) + vm_entries(17, 2)  # 16 is missing inside the batch
    resp = api.post_batch(site, inner)
    assert resp.status_code == 409
    assert resp.json()["expected_seq"] == 16
    assert counts() == before


def test_gaps_below_compacted_through_are_accepted(api: Api) -> None:
    site = api.enroll("s1")
    survivors = [e for e in vm_entries(1, 100) if e["seq"] in (3, 9, 40, 77)]
    refused = api.post_batch(site, survivors, compacted_through=50)
    assert refused.status_code == 409  # 77 after 40: 41..76 are not compacted
    resp = api.post_batch(site, survivors[:3], compacted_through=50)
    assert resp.json() == {"acked_seq": 40, "stored": 3}
    # The agent resends the rest after a restart: 51.. are contiguous again.
    resp = api.post_batch(site, vm_entries(51, 10), compacted_through=50)
    assert resp.json() == {"acked_seq": 60, "stored": 10}
    summary = api.client.get("/api/v1/sites/s1/journal/summary", headers=api.admin).json()
    assert summary["count"] == 13
    assert summary["head"] == 60


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda e: e.reverse(), "batch_not_ordered"),
        (lambda e: e.append(dict(e[-1])), "batch_not_ordered"),
        (lambda e: e[0].update(seq=0), "invalid_entry"),
        (lambda e: e[3].update(kind=""), "invalid_entry"),
        (lambda e: e[3].update(object_id="x" * 300), "invalid_entry"),
        (lambda e: e[3].update(object_type="vm\x00"), "invalid_entry"),
        (lambda e: e[3].update(extra=1), "invalid_batch"),
        (lambda e: e[3].update(seq="4"), "invalid_batch"),
        (lambda e: e[3].pop("object_id"), "invalid_batch"),
        (lambda e: e[3].update(actor={"user": "x" * 129}), "invalid_entry"),
        (lambda e: e[3].update(actor={"job": "a\x00b"}), "invalid_entry"),
        (lambda e: e[3].update(actor={"user": "a", "role": "root"}), "invalid_batch"),
    ],
)
def test_malformed_entries_are_refused_whole(api: Api, mutate: Any, code: str) -> None:
    site = api.enroll("s1")
    api.post_batch(site, vm_entries(1, 3))
    before = counts()
    entries = vm_entries(4, 10)
    mutate(entries)
    resp = api.post_batch(site, entries)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == code
    assert counts() == before
    assert head(api, site) == 3


@pytest.mark.parametrize(
    ("body", "encoding", "status", "code"),
    [
        (b"{not json", "", 400, "invalid_batch"),
        (b'{"entries": 5}', "", 400, "invalid_batch"),
        (
            b'{"entries": [], "compacted_through": 51373278856569348733636604764}',
            "",
            400,
            "invalid_batch",
        ),
        (b"\x1f\x8b\x08\x00garbage", "gzip", 400, "invalid_gzip"),
        (gzip.compress(b'{"entries": []}', mtime=0)[:-6], "gzip", 400, "invalid_gzip"),
        (b'{"entries": []}', "br", 400, "unsupported_encoding"),
        # 64 MiB of zeros gzip to ~64 KiB: must not be inflated into memory.
        (gzip.compress(b"0" * (64 * 1024 * 1024), 1, mtime=0), "gzip", 413, "batch_too_large"),
    ],
)
def test_malformed_bodies(api: Api, body: bytes, encoding: str, status: int, code: str) -> None:
    site = api.enroll("s1")
    headers = {**site, "Content-Encoding": encoding} if encoding else site
    resp = api.client.post("/api/v1/sync/journal", content=body, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code
    assert counts() == (0, 0, 0)


def test_oversize_batches(api: Api) -> None:
    site = api.enroll("s1")
    too_many = api.post_batch(site, vm_entries(1, MAX_BATCH_ENTRIES + 1))
    assert too_many.status_code == 413
    assert too_many.json()["code"] == "batch_too_large"
    big_state = {"blob": "x" * (MAX_BATCH_BYTES // 10)}
    entries = [
        {"seq": i, "kind": "k", "object_type": "t", "object_id": "o", "state": big_state}
        for i in range(1, 12)
    ]
    too_big = api.post_batch(site, entries)
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "batch_too_large"
    raw = api.client.post(
        "/api/v1/sync/journal", content=b" " * (MAX_BATCH_BYTES + 100_000), headers=site
    )
    assert raw.status_code == 413
    assert raw.json()["code"] == "batch_too_large"
    assert counts() == (0, 0, 0)
    assert api.post_batch(site, vm_entries(1, MAX_BATCH_ENTRIES)).json()["stored"] == 1000


def test_objects_fold_entries_and_forget_deleted_ones(api: Api) -> None:
    site = api.enroll("s1")
    api.post_batch(site, vm_entries(1, 12, vms=3))
    api.post_batch(
        site,
        [
            {
                "seq": 13,
                "kind": "vm.deleted",
                "object_type": "vm",
                "object_id": "vm-1",
                "state": None,
            }
        ],
    )
    objects = api.client.get("/api/v1/sites/s1/objects?type=vm", headers=api.admin).json()
    by_id = {o["object_id"]: o for o in objects["objects"]}
    assert sorted(by_id) == ["vm-0", "vm-2"]
    # vm.state entries carried only name/state; the spec from vm.created is kept.
    assert by_id["vm-0"]["state"]["spec"]["tenant"] == "acme"
    assert by_id["vm-0"]["state"]["state"] == "shutoff"
    assert by_id["vm-0"]["seq"] == 12
    assert by_id["vm-0"]["as_of"] == "2025-01-01T00:00:12+00:00"


def _entry(seq: int, kind: str, vm: str, state: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "object_type": "vm", "object_id": vm, "state": state}


def _drift(seq: int, kind: str, vm: str) -> dict[str, Any]:
    return _entry(seq, kind, vm, {"name": vm, "detail": "what the reconciler saw"})


def test_drift_reports_never_become_or_change_objects(api: Api) -> None:
    """A drift entry after vm.deleted made a ghost VM: a name, no state, never cleared."""
    site = api.enroll("s1")
    api.post_batch(site, vm_entries(1, 6, vms=3))
    # The delete and the drift in one batch, and in two: the second merged the drift
    # into the stored state, which the delete had removed.
    api.post_batch(
        site,
        [
            _entry(7, "vm.deleted", "vm-1", None),
            _drift(8, "drift.unknown_domain", "vm-1"),
            _entry(9, "vm.deleted", "vm-2", None),
        ],
    )
    api.post_batch(site, [_drift(10, "drift.unknown_domain", "vm-2")])
    api.post_batch(site, [_drift(11, "drift.unknown_domain", "never-known")])
    api.post_batch(site, [_drift(12, "drift.domain_missing", "vm-0")])
    objects = api.client.get("/api/v1/sites/s1/objects?type=vm", headers=api.admin).json()
    by_id = {o["object_id"]: o for o in objects["objects"]}
    assert sorted(by_id) == ["vm-0"]
    assert by_id["vm-0"]["seq"] == 6
    assert "detail" not in by_id["vm-0"]["state"]
    fleet = api.client.get("/api/v1/fleet/vms", headers=api.admin).json()
    assert [(v["id"], v["state"]) for v in fleet["vms"]] == [("vm-0", "shutoff")]
    # The reports themselves are kept in the site's journal.
    page = api.client.get("/api/v1/sites/s1/journal", headers=api.admin).json()
    kinds = [e["kind"] for e in page["entries"]]
    assert kinds.count("drift.unknown_domain") == 3
    assert kinds.count("drift.domain_missing") == 1


def test_a_vm_never_started_has_the_state_it_was_created_in(api: Api) -> None:
    site = api.enroll("s1")
    spec = {"name": "idle", "tenant": "acme", "role": "b2b", "vcpus": 2}
    created = {"spec": spec, "desired_state": "stopped", "state": "shutoff", "disk_gib": 8}
    api.post_batch(site, [_entry(1, "vm.created", "vm-idle", created)])
    fleet = api.client.get("/api/v1/fleet/vms", headers=api.admin).json()
    assert [(v["name"], v["state"]) for v in fleet["vms"]] == [("idle", "shutoff")]
    api.post_batch(site, [_entry(2, "vm.state", "vm-idle", {"name": "idle", "state": "running"})])
    fleet = api.client.get("/api/v1/fleet/vms?state=running", headers=api.admin).json()
    assert [(v["name"], v["state"]) for v in fleet["vms"]] == [("idle", "running")]


def test_desired_results_become_conflicts(api: Api) -> None:
    site = api.enroll("s1")
    entries = [
        {
            "seq": 1,
            "kind": "desired.conflict",
            "object_type": "desired",
            "object_id": "vnets",
            "state": {
                "version": 3,
                "etag": "e3",
                "result": "conflict",
                "reason": "local change",
                "conflicts": [{"object": "acme/llm", "resolution": "central"}],
            },
        },
        {
            "seq": 2,
            "kind": "desired.rejected",
            "object_type": "desired",
            "object_id": "gpu",
            "state": {"version": 1, "etag": "e1", "result": "rejected", "reason": "bad profile"},
        },
        {
            "seq": 3,
            "kind": "desired.applied",
            "object_type": "desired",
            "object_id": "catalog",
            "state": {"version": 2, "etag": "e2", "result": "applied"},
        },
        # As an appliance reports them: a rejection's reason is its problem (code and
        # message); a conflict names each object and how it was resolved.
        {
            "seq": 4,
            "kind": "desired.rejected",
            "object_type": "desired",
            "object_id": "services",
            "state": {
                "version": 1,
                "etag": "e4",
                "result": "rejected",
                "reason": {
                    "code": "quota_exceeded",
                    "detail": "tenant acme would pass its vms quota",
                },
            },
        },
        {
            "seq": 5,
            "kind": "desired.conflict",
            "object_type": "desired",
            "object_id": "tenants",
            "state": {
                "version": 2,
                "etag": "e5",
                "result": "conflict",
                "reason": None,
                "conflicts": [{"object_id": "acme", "resolution": "local_override"}],
            },
        },
    ]
    api.post_batch(site, entries)
    api.post_batch(site, entries)  # a replay adds no second row
    listed = api.client.get("/api/v1/conflicts", headers=api.admin).json()
    assert listed["total"] == 4
    assert [(c["kind"], c["result"], c["version"], c["reason"]) for c in listed["conflicts"]] == [
        ("tenants", "conflict", 2, "acme: local_override"),
        ("services", "rejected", 1, "quota_exceeded: tenant acme would pass its vms quota"),
        ("gpu", "rejected", 1, "bad profile"),
        ("vnets", "conflict", 3, "local change"),
    ]
    assert listed["conflicts"][3]["detail"]["conflicts"][0]["resolution"] == "central"
    only_gpu = api.client.get("/api/v1/conflicts?kind=gpu&site=s1", headers=api.admin).json()
    assert only_gpu["total"] == 1


def test_concurrent_batches_for_one_site_store_each_seq_once(api: Api, engine: str) -> None:
    """Many threads, each with its own connection, post overlapping batches at once."""
    api.enroll("s1")
    site_id = Site.get(Site.name == "s1").id
    batches = [
        JournalBatch([msgspec.convert(e, WireEntry) for e in vm_entries(start, 50)])
        for start in range(1, 401, 25)
    ]
    errors: list[BaseException] = []
    acks: list[int] = []

    def post(batch: JournalBatch) -> None:
        try:
            send(batch)
        finally:
            api.registry.db.close()  # this thread's own connection

    def send(batch: JournalBatch) -> None:
        for _ in range(40):  # a gap answer means "resend later", as the agent does
            try:
                ack = ingest(site_id, batch, 0)
            except Exception as err:
                if getattr(err, "code", "") != "sequence_gap":
                    errors.append(err)
                    return
                threading.Event().wait(0.01)
                continue
            acks.append(ack.acked_seq)
            return
        errors.append(AssertionError("gave up"))

    threads = [threading.Thread(target=post, args=(b,)) for b in reversed(batches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seqs = [s for (s,) in JournalRow.select(JournalRow.seq).order_by(JournalRow.seq).tuples()]
    assert seqs == list(range(1, 426))
    assert Site.get_by_id(site_id).acked_seq == 425


def test_secrets_are_stored_hashed(api: Api) -> None:
    site = api.enroll("s1")
    secret = site["Authorization"].removeprefix("Bearer ")
    stored = Site.get(Site.name == "s1").secret_hash
    assert stored != secret
    assert len(stored) == 64
    assert secret not in api.registry.db.execute_sql("SELECT * FROM site").fetchall().__repr__()
