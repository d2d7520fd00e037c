"""GET /api/v1/events: the node's changes as server-sent events.

Events: ``hello`` first (the journal's head), then ``journal`` (an entry, as the
journal page gives it, ``id`` its seq), ``snapshot`` (VM states a monitor sweep saw
change), ``sweep`` (once per monitor sweep, its time in seconds: history charts
refetch), ``sync`` (what GET /api/v1/sync/status shows changed: the WAN banner
refetches it) and ``resync`` (the client fell behind or resumed too far back: refetch
what it shows; the stream ends). A comment every ``KEEPALIVE_S`` keeps proxies and
the client's read timeout from closing an idle stream. ``Last-Event-ID`` (a seq)
replays the entries written since, where the journal still holds them all.
Each caller hears only of what it may see, as the other routes show it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

import msgspec
from litestar import Response, get
from litestar.concurrency import sync_to_thread
from litestar.params import HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from appliance.api.deps import ApplianceDep, AuthedRequest
from appliance.services.auth import Principal
from appliance.services.events import RESYNC, Event, EventHub

KEEPALIVE_S = 15.0
RETRY_MS = 1000


# Documented as what it is on the wire: text/event-stream, a string (the Stream class
# itself would be documented as an untyped JSON answer).
@get("/api/v1/events", tags=["node"], media_type="text/event-stream")
async def events(
    request: AuthedRequest,
    appliance: ApplianceDep,
    last_event_id: Annotated[int | None, HeaderParameter(name="Last-Event-ID", ge=0)] = None,
) -> Response[str]:
    """Server-sent events of journal entries as they are committed and of VM state
    changes each monitor sweep sees, for what the caller may see."""
    stream = ServerSentEvent(
        _stream(appliance.events, request.user, last_event_id),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    return cast(Response[str], stream)


async def _stream(
    hub: EventHub, principal: Principal, last_id: int | None
) -> AsyncIterator[ServerSentEventMessage]:
    # Subscribed before the replay is read: an entry committed in between comes
    # through the queue, and the replay's last seq skips the duplicates.
    sub = hub.subscribe(principal.can_see)
    try:
        head, replay = await sync_to_thread(hub.replay, principal.can_see, last_id)
        yield ServerSentEventMessage(event="hello", data=_json({"head": head}), retry=RETRY_MS)
        replayed = last_id or 0
        for missed in replay:
            yield _message(missed)
            if missed.type == RESYNC:
                return
            replayed = missed.id or replayed
        while True:
            try:
                event: Event | None = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            if event is None:
                return  # dropped for falling behind (after its resync), or closing
            if event.id is not None and event.id <= replayed:
                continue
            yield _message(event)
    finally:
        hub.unsubscribe(sub)


def _message(event: Event) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=event.type, id=event.id, data=_json(event.data))


def _json(data: Any) -> str:
    return msgspec.json.encode(data).decode()
