"""The node's changes as they happen, for whoever watches (the UI's open pages).

Writers publish from any thread: journal entries right after their transaction
commits (``journal.add_commit_listener``), and what a monitor sweep saw change. The
hub hands each event to the subscribers allowed to see it, on the event loop that
serves them. A subscriber's queue is bounded: one that does not keep up is dropped
with a ``resync`` event (refetch everything, then subscribe again), so a slow or
dead client never holds back a writer or grows the daemon's memory.

An event names the tenant that owns its object (None for node-wide ones): a
tenant's user hears only of its own tenant's objects, as every route shows it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from appliance.services.monitor import NodeSnapshot
from appliance.store import journal
from appliance.store.models import Vm
from towerbox_core.api.sync import SyncStatusView

log = logging.getLogger(__name__)

JOURNAL = "journal"
SNAPSHOT = "snapshot"
# Once per monitor sweep, with its time and nothing else: pages that chart the
# monitor's history refetch it then, changed or not. It names no object, so every
# caller hears it whatever its tenant.
SWEEP = "sweep"
# The WAN banner's facts changed (an agent report, an ack): its readers refetch
# GET /api/v1/sync/status, which checks who may see it; the event carries nothing.
SYNC = "sync"
RESYNC = "resync"
# Enough for a burst (a service of many VMs deployed at once) between two reads of
# a client that keeps up; past it the client refetches, which is cheaper.
QUEUE_SIZE = 256
# A client that resumes further back than this refetches instead of replaying.
REPLAY_LIMIT = 500


@dataclass(frozen=True)
class Event:
    type: str  # JOURNAL, SNAPSHOT, SWEEP, SYNC or RESYNC
    data: dict[str, Any]
    tenant: str | None = None  # the owner; None: node-wide
    everyone: bool = False  # about no object: every subscriber hears it
    id: int | None = None  # the journal seq, which a client resumes from


@dataclass(eq=False)
class Subscription:
    can_see: Callable[[str | None], bool]
    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE + 1)
    )
    dropped: bool = False

    def offer(self, event: Event) -> None:
        if self.dropped or not (event.everyone or self.can_see(event.tenant)):
            return
        if self.queue.qsize() < QUEUE_SIZE:
            self.queue.put_nowait(event)
            return
        # Behind by a whole queue: what it missed is cheaper refetched than kept.
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(Event(RESYNC, {"reason": "the client fell behind; refetch"}))
        self.queue.put_nowait(None)

    def end(self) -> None:
        if not self.dropped:
            self.dropped = True
            while self.queue.full():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class EventHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[Subscription] = set()
        self._closed = False
        # VM id -> tenant: a deleted VM's last entry must still reach its tenant.
        self._vm_tenants: dict[str, str | None] = {}
        self._sync_shown: tuple[Any, ...] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self, can_see: Callable[[str | None], bool]) -> Subscription:
        """On the serving event loop. A closed hub's subscription ends at once."""
        self._loop = asyncio.get_running_loop()
        sub = Subscription(can_see)
        if self._closed:
            sub.end()
        else:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def close(self) -> None:
        """End every stream (the daemon is stopping: open streams would hold it)."""
        self._closed = True
        self._call(self._end_all)

    def _end_all(self) -> None:
        for sub in self._subs:
            sub.end()
        self._subs.clear()

    def publish(self, events: Iterable[Event]) -> None:
        """From any thread; returns at once."""
        batch = list(events)
        if batch and self._subs:
            self._call(self._deliver, batch)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _deliver(self, batch: list[Event]) -> None:
        for sub in list(self._subs):
            for event in batch:
                sub.offer(event)
            if sub.dropped:
                self._subs.discard(sub)

    def replay(
        self, can_see: Callable[[str | None], bool], after: int | None
    ) -> tuple[int, list[Event]]:
        """The journal's head, and the entries after ``after`` the caller may see (or
        a resync where the journal no longer holds them all, or too many)."""
        head = journal.head()
        if after is None or after >= head:
            return head, []
        if after < journal.compacted_through() or head - after > REPLAY_LIMIT:
            return head, [Event(RESYNC, {"reason": f"cannot replay from {after}; refetch"})]
        found = [
            Event(JOURNAL, e, tenant=self.owner(e), id=e["seq"])
            for e in journal.entries(after, REPLAY_LIMIT)
        ]
        return head, [e for e in found if can_see(e.tenant)]

    # -- what the writers tell -------------------------------------------------------

    def journal_committed(self, entries: list[dict[str, Any]]) -> None:
        """The journal's commit listener: on the writer's thread, after the commit."""
        if not self._subs:
            return
        self.publish(
            Event(JOURNAL, entry, tenant=self.owner(entry), id=entry["seq"]) for entry in entries
        )

    def vms_changed(self, changes: list[dict[str, Any]]) -> None:
        """After each monitor sweep: what it saw change, one event per owning tenant
        (each change has the VM's id, name and new state), then one ``sweep`` event."""
        if not self._subs:
            return
        by_tenant: dict[str | None, list[dict[str, Any]]] = {}
        for change in changes:
            by_tenant.setdefault(self._vm_tenant(change["id"]), []).append(change)
        events = [Event(SNAPSHOT, {"vms": vms}, tenant=t) for t, vms in by_tenant.items()]
        events.append(Event(SWEEP, {"at": time.time()}, everyone=True))
        self.publish(events)

    def sync_changed(self, view: SyncStatusView) -> None:
        """After an agent report or an ack: a ``sync`` event when what the banner shows
        changed. The agent reports every heartbeat, mostly the same facts: those are
        not told again. The agent falling silent is told by no report: readers keep a
        slow poll for that."""
        shown = (
            view.agent,
            view.wan,
            view.offline_since,
            view.last_sync_at,
            view.last_error,
            view.queued,
        )
        if shown == self._sync_shown:
            return
        self._sync_shown = shown
        self.publish([Event(SYNC, {"at": time.time()})])

    def owner(self, entry: dict[str, Any]) -> str | None:
        """The tenant a journal entry is about (None: node-wide)."""
        state = entry.get("state")
        if entry["object_type"] == "vm":
            return self._vm_tenant(entry["object_id"], state)
        if entry["object_type"] == "tenant":
            return str(entry["object_id"])
        if isinstance(state, dict) and isinstance(state.get("tenant"), str):
            return str(state["tenant"])
        return None

    def _vm_tenant(self, vm_id: str, state: Any = None) -> str | None:
        if vm_id not in self._vm_tenants:
            row = Vm.get_or_none(Vm.id == vm_id)
            if row is not None:
                self._vm_tenants[vm_id] = row.tenant
            elif isinstance(state, dict) and isinstance(state.get("spec"), dict):
                self._vm_tenants[vm_id] = state["spec"].get("tenant")
            else:
                return None  # gone before anyone watched it: node-wide viewers only
        return self._vm_tenants[vm_id]


def sweep_changes(before: NodeSnapshot, after: NodeSnapshot) -> list[dict[str, Any]]:
    """The node's VMs whose state a sweep saw change (a domain gone reads "missing"),
    with their names; only the VMs the node owns."""
    states = {uuid: sample.state for uuid, sample in after.vms.items()}
    states.update(dict.fromkeys(before.vms.keys() - after.vms.keys(), "missing"))
    changed = {
        uuid: state
        for uuid, state in states.items()
        if (was := before.vms.get(uuid)) is None or was.state != state
    }
    if not changed or not before.taken_at:
        return []  # the first sweep: nothing was shown before it
    rows = Vm.select(Vm.id, Vm.name).where(Vm.id.in_(list(changed)))
    return [{"id": vm.id, "name": vm.name, "state": changed[vm.id]} for vm in rows]
