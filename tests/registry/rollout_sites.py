"""Sites of a rollout under test, driven over the sync API as an agent would."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registry.services.rollout_step import advance
from tests.registry.fleetapi import Api

BEAT = {"agent_version": "1", "appliance_head": 0, "queued": 0}


@dataclass
class Node:
    """One enrolled site: heartbeats, fetches and reports what it did with a document."""

    api: Api
    name: str
    auth: dict[str, str]
    seq: int = 0
    seen: list[int] = field(default_factory=list)  # versions of the kind it fetched

    def index(self, kind: str) -> dict[str, Any] | None:
        resp = self.api.client.post("/api/v1/sync/heartbeat", json=BEAT, headers=self.auth)
        assert resp.status_code == 200, resp.text
        found = [d for d in resp.json()["desired"] if d["kind"] == kind]
        return found[0] if found else None

    def version(self, kind: str) -> int | None:
        item = self.index(kind)
        return None if item is None else int(item["version"])

    def fetch(self, kind: str) -> dict[str, Any]:
        resp = self.api.client.get(f"/api/v1/sync/desired/{kind}", headers=self.auth)
        assert resp.status_code == 200, resp.text
        doc: dict[str, Any] = resp.json()
        self.seen.append(doc["version"])
        return doc

    def report(self, kind: str, result: str = "applied", code: str | None = None) -> None:
        """Fetch the kind's document and journal what the node did with it."""
        doc = self.fetch(kind)
        self.journal(
            f"desired.{result}",
            "desired",
            kind,
            {
                "version": doc["version"],
                "etag": doc["etag"],
                "source": doc["source"],
                "result": result,
                "reason": {"code": code, "detail": code} if code else None,
            },
        )

    def journal(self, kind: str, object_type: str, object_id: str, state: Any) -> None:
        self.seq += 1
        entry = {
            "seq": self.seq,
            "kind": kind,
            "object_type": object_type,
            "object_id": object_id,
            "state": state,
        }
        resp = self.api.post_batch(self.auth, [entry])
        assert resp.status_code == 200, resp.text


def group_of(api: Api, count: int, label: str = "tier=gold", prefix: str = "s") -> list[Node]:
    key, value = label.split("=")
    nodes = []
    for n in range(count):
        name = f"{prefix}{n:02d}"
        node = Node(api, name, api.enroll(name, labels={key: value}))
        node.index("gpu")  # a heartbeat: the site is online
        nodes.append(node)
    return nodes


def step(api: Api, rollout_id: int) -> dict[str, Any]:
    """Move the rollout on as the registry's periodic task does; its view after."""
    advance(rollout_id, api.registry.sites.status)
    resp = api.client.get(f"/api/v1/rollouts/{rollout_id}", headers=api.admin)
    assert resp.status_code == 200, resp.text
    view: dict[str, Any] = resp.json()
    return view
