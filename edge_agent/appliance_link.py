"""The agent's side of the appliance API (sync-agent token)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import msgspec

from edge_agent.errors import Refused, Unreachable
from edge_agent.http import call
from towerbox_core.api.versions import NodeVersions
from towerbox_core.wire import AgentStatus, DesiredDocument, WireEntry


class JournalPage(msgspec.Struct, frozen=True):
    head: int
    compacted_through: int
    acked_seq: int
    entries: list[WireEntry]


class ApplianceLink:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._http = client

    async def journal(self, after: int, limit: int) -> JournalPage:
        resp = await call(
            self._http,
            "appliance",
            "GET",
            "/api/v1/journal",
            params={"after": after, "limit": limit},
        )
        try:
            return msgspec.json.decode(resp.content, type=JournalPage)
        except msgspec.DecodeError as err:
            raise Unreachable("appliance", f"a journal page we cannot read: {err}") from err

    async def ack(self, seq: int) -> None:
        await call(self._http, "appliance", "POST", "/api/v1/journal/ack", json={"seq": seq})

    async def put_status(self, status: AgentStatus) -> None:
        await call(
            self._http,
            "appliance",
            "PUT",
            "/api/v1/sync/status",
            content=msgspec.json.encode(status),
            headers={"Content-Type": "application/json"},
        )

    async def hand_over(self, doc: DesiredDocument) -> dict[str, Any]:
        resp = await call(
            self._http,
            "appliance",
            "POST",
            f"/api/v1/desired/{doc.kind}",
            content=msgspec.json.encode(doc),
            headers={"Content-Type": "application/json"},
        )
        result: dict[str, Any] = resp.json()
        return result

    async def host_facts(self) -> tuple[dict[str, Any], NodeVersions | None]:
        """What the registry shows of the node beside its objects: health, backends and
        the versions the appliance runs (None from an appliance that does not say).

        Only what changes with the node's state, not with time: the agent sends the
        facts again only when they change, so the start time stands for the uptime.
        """
        try:
            resp = await call(self._http, "appliance", "GET", "/healthz")
            health = resp.json()
        except (Unreachable, Refused, ValueError) as err:
            return {"appliance": "unreachable", "detail": str(err)[:200]}, None
        lines: list[str] = []
        for backend in dict(health.get("backends") or {}).values():
            summary = backend.get("summary") if isinstance(backend, dict) else None
            lines += summary if isinstance(summary, list) else [summary] if summary else []
        facts = {
            "node": health.get("node"),
            "health": health.get("status"),
            "backends": [str(line) for line in lines],
        }
        started = health.get("started_at")
        if isinstance(started, int | float):
            facts["started_at"] = dt.datetime.fromtimestamp(int(started), dt.UTC).isoformat()
        try:
            versions = msgspec.convert(health.get("versions"), NodeVersions | None)
        except msgspec.ValidationError:
            versions = None
        return facts, versions

    async def close(self) -> None:
        await self._http.aclose()
