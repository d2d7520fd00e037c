"""The appliance's event stream read on a thread, for tests: events arrive in a queue."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from towerbox_core.sse import SseEvent, SseParser


class EventReader:
    def __init__(self) -> None:
        self.events: queue.Queue[SseEvent | None] = queue.Queue()
        self.seen: list[SseEvent] = []
        self.status: int | None = None

    def until(self, wanted: Callable[[SseEvent], bool], timeout: float = 30.0) -> SseEvent:
        """The first event (from now on) that ``wanted`` accepts; all read go to ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such event; saw {[e.event for e in self.seen]}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                raise AssertionError("the stream ended")
            self.seen.append(event)
            if wanted(event):
                return event

    def ended(self, timeout: float) -> bool:
        """Whether the stream ends within ``timeout`` (events before the end are kept)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                continue
            if event is None:
                return True
            self.seen.append(event)
        return False


@contextmanager
def reading(url: str, token: str | None, last_event_id: int | None = None) -> Iterator[EventReader]:
    """GET /api/v1/events on a thread; yields once the response's status is known."""
    reader = EventReader()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    started = threading.Event()
    client = httpx.Client(base_url=url, timeout=httpx.Timeout(60, read=None))

    def run() -> None:
        try:
            with client.stream("GET", "/api/v1/events", headers=headers) as resp:
                reader.status = resp.status_code
                started.set()
                parser = SseParser()
                for line in resp.iter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        reader.events.put(event)
        except httpx.HTTPError:
            pass  # closed under it: the test is over, or the daemon went
        finally:
            started.set()
            reader.events.put(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(60)
    try:
        yield reader
    finally:
        client.close()
        thread.join(10)
