"""Reads that every open page polls alike, made once for all of them.

Each page's frame asks for the node's health and the WAN status on its own timer; with
several pages open the same answers were fetched once per page, and an idle UI spent
most of its CPU on those requests. Here a read made for one page serves the others
for ``max_age_s``, and pages that ask while it is under way wait for it rather than
send their own. Answers are kept per token, so no user sees one fetched with another
user's rights; failures are never kept. A page refreshing because the event stream
told it of a change asks for an answer read after it heard the change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Key = tuple[str, str | None]  # path, token


class SharedReads:
    def __init__(
        self,
        fetch: Callable[[str, str | None], Awaitable[Any]],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age_s = max_age_s
        self._clock = clock
        self._kept: dict[Key, tuple[float, Any]] = {}
        self._pending: dict[Key, tuple[float, asyncio.Future[Any]]] = {}

    async def get(self, path: str, token: str | None, since: float | None = None) -> Any:
        """The answer, shared; with ``since`` (a time of ``clock``) only one asked for at
        or after it: pages that heard of a change at once share one fresh read, and
        none takes an answer that may predate the change."""
        key = (path, token)
        now = self._clock()
        # Forget what has aged, so tokens of ended sessions do not pile up.
        self._kept = {k: v for k, v in self._kept.items() if now - v[0] < self._max_age_s}
        kept = self._kept.get(key)
        if kept is not None and (since is None or kept[0] >= since):
            return kept[1]
        asked, pending = self._pending.get(key, (now, None))
        if pending is None or (since is not None and asked < since):
            asked, pending = now, asyncio.ensure_future(self._fetch(path, token))
            self._pending[key] = (asked, pending)
            # Aged from when it was asked: a page polling alone, every max_age_s or a
            # little more, reads afresh each time however long the answer took.
            pending.add_done_callback(lambda done: self._settle(key, now, done))
        # Shielded: a page closed while waiting must not cancel the others' read.
        return await asyncio.shield(pending)

    def _settle(self, key: Key, asked: float, done: asyncio.Future[Any]) -> None:
        if self._pending.get(key, (0.0, None))[1] is done:
            del self._pending[key]
        if done.cancelled() or done.exception() is not None:
            return
        if key not in self._kept or self._kept[key][0] <= asked:  # a newer read stands
            self._kept[key] = (asked, done.result())

    async def close(self) -> None:
        """At shutdown: end the reads under way (shielded from the pages that asked)
        and wait for them, so none is left holding a connection."""
        pending = [read for _, read in self._pending.values()]
        for read in pending:
            read.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
