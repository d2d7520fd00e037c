"""Sites without a node: each heartbeats the real registry, fetches the document its
index names and journals ``desired.applied`` for it, as an agent and an appliance
that accept everything would. They stand beside a real appliance + agent pair so a
rollout has a group of several sites without several appliances."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import httpx

BEAT = {"agent_version": "sim", "appliance_head": 0, "queued": 0}


@dataclass
class SimSite:
    name: str
    secret: str
    seq: int = 0
    etags: dict[str, str] = field(default_factory=dict)
    seen: dict[str, list[int]] = field(default_factory=dict)  # kind: versions fetched


class SimSites(threading.Thread):
    def __init__(self, url: str, sites: list[SimSite], period_s: float = 0.3) -> None:
        super().__init__(name="sim-sites", daemon=True)
        self.sites = sites
        self._client = httpx.Client(base_url=url, timeout=10)
        self._period = period_s
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self._period):
            for site in self.sites:
                # A registry restart: the next round retries.
                with contextlib.suppress(httpx.HTTPError):
                    self._visit(site)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
        self._client.close()

    def _visit(self, site: SimSite) -> None:
        auth = {"Authorization": f"Bearer {site.secret}"}
        beat = self._client.post("/api/v1/sync/heartbeat", json=BEAT, headers=auth)
        beat.raise_for_status()
        for item in beat.json()["desired"]:
            kind = item["kind"]
            if site.etags.get(kind) == item["etag"]:
                continue
            doc = self._client.get(f"/api/v1/sync/desired/{kind}", headers=auth)
            doc.raise_for_status()
            body = doc.json()
            state = {
                "version": body["version"],
                "etag": body["etag"],
                "source": body["source"],
                "result": "applied",
            }
            entry = {
                "seq": site.seq + 1,
                "kind": "desired.applied",
                "object_type": "desired",
                "object_id": kind,
                "state": state,
            }
            sent = self._client.post(
                "/api/v1/sync/journal",
                json={"entries": [entry], "compacted_through": 0},
                headers=auth,
            )
            sent.raise_for_status()
            site.seq += 1
            site.etags[kind] = body["etag"]
            site.seen.setdefault(kind, []).append(body["version"])


def enroll_sims(operator: httpx.Client, names: list[str], labels: dict[str, str]) -> list[SimSite]:
    sites = []
    for name in names:
        made = operator.post("/api/v1/sites", json={"name": name, "labels": labels})
        assert made.status_code == 201, made.text
        enrolled = operator.post(
            "/api/v1/enroll", json={"token": made.json()["enrollment_token"], "hostname": name}
        )
        assert enrolled.status_code == 200, enrolled.text
        sites.append(SimSite(name, enrolled.json()["secret"]))
    return sites
