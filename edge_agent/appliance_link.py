"""The agent's side of the appliance API (sync-agent token)."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from edge_agent.errors import Refused, Unreachable
from edge_agent.http import call
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

    async def host_facts(self) -> dict[str, Any]:
        """What the registry shows of the node beside its objects: health and backends."""
        try:
            resp = await call(self._http, "appliance", "GET", "/healthz")
            health = resp.json()
        except (Unreachable, Refused, ValueError) as err:
            return {"appliance": "unreachable", "detail": str(err)[:200]}
        lines: list[str] = []
        for backend in dict(health.get("backends") or {}).values():
            summary = backend.get("summary") if isinstance(backend, dict) else None
            lines += summary if isinstance(summary, list) else [summary] if summary else []
        return {
            "node": health.get("node"),
            "health": health.get("status"),
            "uptime_s": health.get("uptime_s"),
            "backends": [str(line) for line in lines],
        }

    async def close(self) -> None:
        await self._http.aclose()
