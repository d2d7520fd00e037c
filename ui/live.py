"""Pages refreshed by the appliance's event stream instead of polling.

The UI process opens one stream (GET /api/v1/events) per session token, shared by
all of that session's open pages and kept open while any of them is: a page that
opens finds the stream already up and spends no connect time before its first
change. On an event, the parts of each page that show its object refresh; while
the stream is down they poll at their old interval, and the stream is reopened
with backoff. Live, a slow poll stays as a safety net. The appliance is local:
this works with the WAN down.

Each page has one clock for all its parts, which sleeps until the next part is due:
live, an idle page wakes about once per ``SAFETY_S``, not once per part per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from nicegui import Client, background_tasks, ui

from towerbox_core.client import async_http
from towerbox_core.sse import SseEvent, SseParser

log = logging.getLogger(__name__)

# Live, a part still refreshes this often: an event lost in a reconnect is caught up.
SAFETY_S = 30.0
# The appliance sends a keep-alive every 15 s: a stream silent for longer is dead.
READ_TIMEOUT_S = 45.0
BACKOFF_S = (0.5, 30.0)
SWEEP_KIND = "vm.observed"  # a change a monitor sweep saw, not a journal entry
SWEPT = "sweep"  # the monitor swept (its history grew), changed or not
SYNCED = "sync"  # what GET /api/v1/sync/status shows changed (the WAN banner's facts)
# Events about no object: only the parts that ask for them take them.
SIGNALS = (SWEPT, SYNCED)


@dataclass(frozen=True)
class Change:
    """One changed object, from a journal entry or a monitor sweep."""

    kind: str  # the journal kind ("vm.stop"), or "vm.observed" from a sweep
    object_type: str
    object_id: str
    name: str | None
    state: Any
    # When the stream brought it: a read begun after this shows it (ui.shared_reads).
    heard: float = field(default_factory=time.monotonic, compare=False)


def changes(event: SseEvent) -> list[Change]:
    """The objects an event is about; [] for hello and keep-alives."""
    if event.event == "journal":
        entry = event.json()
        state = entry.get("state")
        named: dict[str, Any] = state if isinstance(state, dict) else {}
        spec = named.get("spec")
        name = named.get("name") or (spec.get("name") if isinstance(spec, dict) else None)
        object_type = str(entry["object_type"])
        if name is None and object_type != "vm":
            name = entry["object_id"]  # tenants, services, VNets are keyed by name
        return [Change(entry["kind"], object_type, str(entry["object_id"]), name, state)]
    if event.event == "snapshot":
        return [
            Change(SWEEP_KIND, "vm", vm["id"], vm["name"], {"state": vm["state"]})
            for vm in event.json().get("vms", [])
        ]
    if event.event in SIGNALS:
        return [Change(event.event, event.event, "", None, event.json())]
    return []


Matches = Callable[[Change], bool]


def about(*object_types: str) -> Matches:
    """Changes of these kinds of object ("vm", "gpu", "n6", ...)."""
    return lambda change: change.object_type in object_types


def journalled(change: Change) -> bool:
    """Any journal entry (a sweep's observation is not one)."""
    return change.kind != SWEEP_KIND


Refresh = Callable[[], Coroutine[Any, Any, None]]
OnChange = Callable[[Change], Coroutine[Any, Any, None]]


class _Part:
    """One part of a page: refreshed on matching changes, coalesced so a burst of
    events costs one refresh running and at most one after it."""

    def __init__(
        self,
        refresh: Refresh,
        matches: Matches,
        on_change: OnChange | None,
        signals: tuple[str, ...] = (),
        poll_s: float = SAFETY_S,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.refresh = refresh
        self.on_change = on_change
        # A sweep or a sync names no object: only the parts that follow it take it.
        self.matches: Matches = lambda change: (
            change.kind in signals if change.kind in SIGNALS else matches(change)
        )
        self.poll_s = poll_s
        self.busy = busy
        self.last = time.monotonic()
        self.ran: Callable[[], None] = lambda: None  # after each refresh (the page's clock)
        self._running = False
        self._again = False

    def interval(self, live: bool) -> float:
        """How often it polls: at its own pace while the stream is down or while it
        shows progress no event tells, as a safety net otherwise."""
        if live and not self.busy():
            return max(SAFETY_S, self.poll_s)
        return self.poll_s

    async def run(self) -> None:
        if self._running:
            self._again = True
            return
        self._running = True
        try:
            while True:
                self._again = False
                self.last = time.monotonic()
                await self.refresh()
                if not self._again:
                    return
        finally:
            self._running = False
            self.ran()


class LiveFeed:
    def __init__(self, base_url: str, token: str) -> None:
        self._base_url = base_url
        self._token = token
        self._parts: list[_Part] = []
        self._mode_listeners: list[Callable[[bool], None]] = []
        self._client: Client | None = None
        self._stream: _SharedStream | None = None
        self.live = False
        self._heard = False  # a change came before all of the page's parts were watched
        self._away = False  # the browser's connection to this page is gone
        self._missed = False  # changes came while it was away
        self._wake = asyncio.Event()  # the clock looks again: mode, parts or busy changed
        self._clock: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Follow the session's stream for the current page client, for as long as it
        lives; the stream is opened here only if no other page of the session holds it."""
        if self._stream is not None:
            return
        self._client = ui.context.client
        self._stream = _SharedStream.join(self._base_url, self._token, self)
        self._clock = background_tasks.create(self._poll(), name="live poll")
        self._client.on_delete(self.stop)
        self._client.on_disconnect(self._went_away)
        self._client.on_connect(self._came_back)

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.leave(self)
            self._stream = None
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def on_mode(self, listener: Callable[[bool], None]) -> None:
        """``listener(live)`` when the stream comes up (True) or drops (False)."""
        self._mode_listeners.append(listener)

    def watch(
        self,
        refresh: Refresh,
        poll_s: float,
        matches: Matches = lambda _change: True,
        on_change: OnChange | None = None,
        busy: Callable[[], bool] = lambda: False,
        sweeps: bool = False,
        synced: bool = False,
    ) -> None:
        """Refresh a part on each change ``matches`` accepts (``on_change`` instead,
        where the part refreshes just that object), after each monitor sweep if
        ``sweeps`` (what charts the monitor's readings), and when the sync status
        changed if ``synced`` (the WAN banner); poll every ``poll_s`` while the stream
        is down or while ``busy()`` (progress no journal entry tells, such as a
        download's bytes), every ``SAFETY_S`` otherwise."""
        signals = tuple(s for s, wanted in ((SWEPT, sweeps), (SYNCED, synced)) if wanted)
        part = _Part(refresh, matches, on_change, signals, poll_s, busy)
        part.ran = self._wake.set  # it may have become busy: the clock looks again
        self._parts.append(part)
        self._wake.set()
        if self._heard:
            # The stream was already up when the page opened, and a change came while
            # the page read its data: the part may show what was read before it.
            self._spawn(part.run)

    async def _poll(self) -> None:
        """The page's clock: run each part that is due, then sleep until the next one
        is, or until the mode changes or a refresh ends (a part may have become busy)."""
        while True:
            now = time.monotonic()
            wait = SAFETY_S
            for part in self._parts:
                due = part.last + part.interval(self.live) - now
                if due <= 0:
                    part.last = now  # not due again while this run is under way
                    self._spawn(part.run)
                    due = part.interval(self.live)
                wait = min(wait, due)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _dispatch(self, found: list[Change]) -> None:
        if found:
            self._heard = True
        for part in self._parts:
            for change in found:
                if part.matches(change):
                    if part.on_change is not None:
                        self._spawn(functools.partial(part.on_change, change))
                    else:
                        self._spawn(part.run)
                        break

    def _dispatch_all(self) -> None:
        self._heard = True
        for part in self._parts:
            self._spawn(part.run)

    def _spawn(self, work: Refresh) -> None:
        """Run ``work()`` in the page's context; made only when it runs, so a page torn
        down first leaves no coroutine never awaited."""
        client = self._client
        if client is None or client.is_deleted or self._away:
            # A page the browser left (it is deleted a few seconds later) or is
            # reconnecting to: nobody would see the refresh. It catches up on return.
            self._missed = True
            return

        async def within_page() -> None:
            with client:
                await work()

        background_tasks.create(within_page(), name="live refresh")

    def _went_away(self) -> None:
        self._away = True

    def _came_back(self) -> None:
        self._away = False
        if self._missed:
            self._missed = False
            self._dispatch_all()

    def _set_live(self, live: bool) -> None:
        if live == self.live:
            return
        self.live = live
        self._wake.set()
        for listener in self._mode_listeners:
            with contextlib.suppress(Exception):  # a page being torn down
                listener(live)


class _SharedStream:
    """One session's event stream in this process, fanned out to its open pages."""

    _open: ClassVar[dict[tuple[str, str], _SharedStream]] = {}

    def __init__(self, base_url: str, token: str) -> None:
        self._base_url = base_url
        self._token = token
        self._feeds: list[LiveFeed] = []
        self.live = False
        self._task = background_tasks.create(self._follow(), name="event stream")

    @classmethod
    def join(cls, base_url: str, token: str, feed: LiveFeed) -> _SharedStream:
        key = (base_url, token)
        stream = cls._open.get(key)
        if stream is None:
            stream = cls._open[key] = cls(base_url, token)
        stream._feeds.append(feed)
        if stream.live:
            feed._set_live(True)
        return stream

    def leave(self, feed: LiveFeed) -> None:
        if feed in self._feeds:
            self._feeds.remove(feed)
        if not self._feeds:
            # The session's last page is gone: nobody is left to show a change.
            self._task.cancel()
            if self._open.get((self._base_url, self._token)) is self:
                del self._open[(self._base_url, self._token)]

    async def _follow(self) -> None:
        delay = BACKOFF_S[0]
        last_id: str | None = None
        while True:
            try:
                last_id = await self._read(last_id)
                delay = BACKOFF_S[0]  # it was up: reopen at once
            except (httpx.HTTPError, ValueError, KeyError) as err:
                log.info("event stream down (%s); polling", err or type(err).__name__)
            self._set_live(False)
            # Jitter, so the pages of a restarted appliance do not all come back at once.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311
            delay = min(delay * 2, BACKOFF_S[1])

    async def _read(self, last_id: str | None) -> str | None:
        headers = {"Authorization": f"Bearer {self._token}"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        async with (
            async_http(self._base_url, timeout=READ_TIMEOUT_S) as http,
            http.stream("GET", "/api/v1/events", headers=headers) as resp,
        ):
            if resp.status_code != 200:
                raise ValueError(f"the appliance answered {resp.status_code}")
            parser = SseParser(last_id)
            async for line in resp.aiter_lines():
                event = parser.feed(line)
                if event is None:
                    continue
                if event.event == "hello":
                    self._set_live(True)
                    # What the parts show was read before this subscription (the pages
                    # loading, or the stream down): anything may have changed since.
                    for feed in list(self._feeds):
                        feed._dispatch_all()
                elif event.event == "resync":
                    for feed in list(self._feeds):
                        feed._dispatch_all()
                    return None  # the appliance ends the stream; reopen afresh
                else:
                    found = changes(event)
                    for feed in list(self._feeds):
                        feed._dispatch(found)
            return parser.last_id

    def _set_live(self, live: bool) -> None:
        self.live = live
        for feed in list(self._feeds):
            feed._set_live(live)


async def close_streams() -> None:
    """At the UI's shutdown: end every session's stream and wait for each to close its
    connection, rather than leave the sockets to the garbage collector."""
    streams = list(_SharedStream._open.values())
    _SharedStream._open.clear()
    for stream in streams:
        stream._task.cancel()
    await asyncio.gather(*(stream._task for stream in streams), return_exceptions=True)
