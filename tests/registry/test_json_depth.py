"""Deeply nested JSON is refused at the registry's edge with json_too_deep, and an
entry stored deeper before that bound existed still gets a journal summary."""

from __future__ import annotations

import gzip
from typing import Any

import msgspec

from registry.store.models import JournalRow, Site
from tests.registry.fleetapi import Api
from towerbox_core.json_depth import MAX_JSON_DEPTH
from towerbox_core.wire import WireEntry, journal_checksum


def nested(levels: int) -> Any:
    """``levels`` objects/arrays inside one another, alternating."""
    value: Any = 1
    for i in range(levels):
        value = {"a": value} if i % 2 else [value]
    return value


def entry(seq: int, state: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": "k", "object_type": "t", "object_id": "o", "state": state}


def assert_too_deep(resp: Any) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "json_too_deep"


def test_a_batch_nested_1000_levels_is_a_400(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("s1")
    # Raw bytes: the test's own encoder would stop at this depth too.
    body = b'{"entries":[' + b"[" * 1000 + b"]" * 1000 + b"]}"
    resp = sqlite_api.client.post(
        "/api/v1/sync/journal",
        content=gzip.compress(body),
        headers={**site, "Content-Encoding": "gzip"},
    )
    assert_too_deep(resp)


def test_a_state_nested_600_levels_is_refused_and_nothing_stored(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("s1")
    assert_too_deep(sqlite_api.post_batch(site, [entry(1, nested(600))]))
    assert JournalRow.select().count() == 0
    # A state as deep as any API accepts still goes through, in its envelope.
    resp = sqlite_api.post_batch(site, [entry(1, nested(MAX_JSON_DEPTH))])
    assert resp.status_code == 200, resp.text


def test_a_heartbeat_nested_1000_levels_is_a_400(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("s1")
    body = b'{"agent_version":"1","appliance_head":0,"queued":0,"host":{"x":'
    body += b"[" * 1000 + b"]" * 1000 + b"}}"
    resp = sqlite_api.client.post("/api/v1/sync/heartbeat", content=body, headers=site)
    assert_too_deep(resp)


def test_an_operator_body_nested_deep_is_a_400(sqlite_api: Api) -> None:
    body = msgspec.json.encode({"name": "s1", "labels": nested(200)})
    resp = sqlite_api.client.post(
        "/api/v1/sites",
        content=body,
        # The Content-Type does not matter: the route decodes its body as JSON anyway.
        headers={**sqlite_api.admin, "Content-Type": "text/plain"},
    )
    assert_too_deep(resp)


def test_a_deep_entry_already_stored_still_gets_a_summary(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("s1")
    assert sqlite_api.post_batch(site, [entry(1, {"ok": True})]).status_code == 200
    # Stored before the edge bounded depth: 600 levels, as an old registry accepted.
    state = "[" * 300 + '{"a":' * 300 + "1" + "}" * 300 + "]" * 300
    JournalRow.create(
        site=Site.get(Site.name == "s1"),
        seq=2,
        kind="k",
        object_type="t",
        object_id="o",
        state=state,
    )
    resp = sqlite_api.client.get("/api/v1/sites/s1/journal/summary", headers=sqlite_api.admin)
    assert resp.status_code == 200, resp.text
    held = [
        WireEntry(1, "k", "t", "o", {"ok": True}),
        WireEntry(2, "k", "t", "o", msgspec.json.decode(state)),
    ]
    assert resp.json() == {"site": "s1", "count": 2, "head": 2, "checksum": journal_checksum(held)}
