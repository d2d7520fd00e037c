"""The agent's side of the registry API (site secret, gzip batches, ETags)."""

from __future__ import annotations

import gzip
from typing import TypeVar

import httpx
import msgspec

from edge_agent import __version__
from edge_agent.errors import Unreachable
from edge_agent.http import call
from towerbox_core.api.fleet import HeartbeatReply, JournalHead
from towerbox_core.wire import (
    MAX_BATCH_BYTES,
    DesiredDocument,
    Heartbeat,
    JournalAck,
    JournalBatch,
    WireEntry,
)

T = TypeVar("T")
_NEEDLESS_HEADERS = ("accept", "accept-encoding", "connection")


def encode_batch(entries: list[WireEntry], compacted_through: int) -> tuple[bytes, int]:
    """The largest prefix of ``entries`` under the byte bound, JSON-encoded.

    Returns the body (not yet gzipped) and how many entries it holds.
    """
    count = len(entries)
    while True:
        body = msgspec.json.encode(JournalBatch(entries[:count], compacted_through))
        if len(body) <= MAX_BATCH_BYTES or count == 1:
            return body, count
        count = max(1, count // 2)


class RegistryLink:
    def __init__(self, client: httpx.AsyncClient) -> None:
        # Every header goes over the WAN four times a minute from a quiet site: drop
        # httpx's defaults that say nothing here (answers are JSON, HTTP/1.1 keeps the
        # connection alive anyway) and name the agent in a short User-Agent.
        for name in _NEEDLESS_HEADERS:
            client.headers.pop(name, None)
        client.headers["User-Agent"] = f"towerbox-agent/{__version__}"
        self._http = client

    def _decode(self, resp: httpx.Response, kind: type[T]) -> T:
        try:
            return msgspec.json.decode(resp.content, type=kind)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            raise Unreachable("registry", f"an answer we cannot read: {err}") from err

    async def head(self) -> int:
        resp = await call(self._http, "registry", "GET", "/api/v1/sync/journal/head")
        return self._decode(resp, JournalHead).acked_seq

    async def post_batch(self, body: bytes) -> JournalAck:
        resp = await call(
            self._http,
            "registry",
            "POST",
            "/api/v1/sync/journal",
            content=gzip.compress(body, compresslevel=5),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        return self._decode(resp, JournalAck)

    async def heartbeat(self, beat: Heartbeat) -> HeartbeatReply:
        resp = await call(
            self._http,
            "registry",
            "POST",
            "/api/v1/sync/heartbeat",
            content=msgspec.json.encode(beat),
            headers={"Content-Type": "application/json"},
        )
        return self._decode(resp, HeartbeatReply)

    async def desired(self, kind: str, etag: str | None) -> DesiredDocument | None:
        """The effective document, or None when ``etag`` is still current (304)."""
        headers = {"If-None-Match": etag} if etag else {}
        resp = await call(
            self._http, "registry", "GET", f"/api/v1/sync/desired/{kind}", headers=headers
        )
        if resp.status_code == 304:
            return None
        return self._decode(resp, DesiredDocument)

    async def close(self) -> None:
        await self._http.aclose()
