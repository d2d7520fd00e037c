"""Reads that every open page polls alike, made once for all of them.

Each page's frame asks for the node's health and the WAN status on its own timer; with
several pages open the same answers were fetched once per page, and an idle UI spent
most of its CPU on those requests. Here a read made for one page serves the others
for ``max_age_s``, and pages that ask while it is under way wait for it rather than
send their own. Answers are kept per token, so no user sees one fetched with another
user's rights; failures are never kept.
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
        self._pending: dict[Key, asyncio.Future[Any]] = {}

    async def get(self, path: str, token: str | None) -> Any:
        key = (path, token)
        now = self._clock()
        # Forget what has aged, so tokens of ended sessions do not pile up.
        self._kept = {k: v for k, v in self._kept.items() if now - v[0] < self._max_age_s}
        kept = self._kept.get(key)
        if kept is not None:
            return kept[1]
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(path, token))
            self._pending[key] = pending
            # Aged from when it was asked: a page polling alone, every max_age_s or a
            # little more, reads afresh each time however long the answer took.
            pending.add_done_callback(lambda done: self._settle(key, now, done))
        # Shielded: a page closed while waiting must not cancel the others' read.
        return await asyncio.shield(pending)

    def _settle(self, key: Key, asked: float, done: asyncio.Future[Any]) -> None:
        self._pending.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._kept[key] = (asked, done.result())

    async def close(self) -> None:
        """At shutdown: end the reads under way (shielded from the pages that asked)
        and wait for them, so none is left holding a connection."""
        pending = list(self._pending.values())
        for read in pending:
            read.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
