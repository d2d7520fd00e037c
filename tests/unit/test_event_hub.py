"""The event hub: a subscriber that falls behind is dropped with a resync, never
waited for; each subscriber gets only the tenants it may see; closing ends all."""

from __future__ import annotations

import asyncio
import threading
import time

import msgspec

from appliance.services.events import JOURNAL, QUEUE_SIZE, RESYNC, Event, EventHub


def _entry(seq: int, tenant: str | None) -> Event:
    return Event(JOURNAL, {"seq": seq}, tenant=tenant, id=seq)


def _drain(queue: asyncio.Queue[Event | None]) -> list[Event | None]:
    out: list[Event | None] = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_a_subscriber_that_falls_behind_is_dropped_with_a_resync() -> None:
    async def scenario() -> None:
        hub = EventHub()
        slow = hub.subscribe(lambda _tenant: True)
        # A writer thread publishes far more than the queue holds; it never waits.
        writer = threading.Thread(
            target=lambda: [hub.publish([_entry(i, None)]) for i in range(1, 3 * QUEUE_SIZE)]
        )
        started = time.monotonic()
        writer.start()
        while writer.is_alive():
            await asyncio.sleep(0.01)
        assert time.monotonic() - started < 30
        await asyncio.sleep(0.05)  # the deliveries scheduled on this loop run
        got = _drain(slow.queue)
        assert got[-1] is None, "the stream of a dropped subscriber ends"
        last = got[-2]
        assert last is not None and last.type == RESYNC
        assert len(got) <= QUEUE_SIZE + 1
        # Dropped for good: later events are not queued for it.
        hub.publish([_entry(10_000, None)])
        await asyncio.sleep(0.05)
        assert slow.queue.empty()

    asyncio.run(scenario())


def test_each_subscriber_hears_only_the_tenants_it_may_see_and_close_ends_all() -> None:
    async def scenario() -> None:
        hub = EventHub()
        acme = hub.subscribe(lambda tenant: tenant == "acme")
        admin = hub.subscribe(lambda _tenant: True)
        hub.publish([_entry(1, "acme"), _entry(2, "beta"), _entry(3, None)])
        await asyncio.sleep(0.01)
        assert [e.id for e in _drain(acme.queue) if e] == [1]
        assert [e.id for e in _drain(admin.queue) if e] == [1, 2, 3]
        hub.close()
        assert _drain(acme.queue) == [None]
        late = hub.subscribe(lambda _tenant: True)
        assert _drain(late.queue) == [None], "a closed hub ends a new stream at once"

    asyncio.run(scenario())


def test_a_sync_event_when_what_the_banner_shows_changes_only() -> None:
    from appliance.services.events import SYNC
    from towerbox_core.api.sync import SyncStatusView

    async def scenario() -> None:
        hub = EventHub()
        admin = hub.subscribe(lambda _tenant: True)
        tenant = hub.subscribe(lambda tenant: tenant == "acme")
        online = SyncStatusView(agent="running", wan="online", last_sync_at="t1", queued=0)
        hub.sync_changed(online)
        # The next heartbeat says the same: nothing to tell.
        hub.sync_changed(SyncStatusView(**{**msgspec.structs.asdict(online), "head": 9}))
        hub.sync_changed(SyncStatusView(agent="running", wan="offline", queued=3))
        await asyncio.sleep(0.01)
        assert [e.type for e in _drain(admin.queue) if e] == [SYNC, SYNC]
        assert _drain(tenant.queue) == [], "the node's sync status is not a tenant's"

    asyncio.run(scenario())
