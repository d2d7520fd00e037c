"""Reads the open pages poll alike are made once for all of them (ui.shared_reads)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ui.api import ApiError
from ui.shared_reads import SharedReads


class Appliance:
    """Answers each read after a moment, counting them; fails while ``failing``."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, str | None]] = []
        self.failing = False

    async def fetch(self, path: str, token: str | None) -> Any:
        self.reads.append((path, token))
        await asyncio.sleep(0.01)
        if self.failing:
            raise ApiError(0, "appliance_unreachable", "the appliance does not answer")
        return {"path": path, "read": len(self.reads)}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pages_asking_at_once_share_one_read() -> None:
    node = Appliance()
    reads = SharedReads(node.fetch, max_age_s=1.5, clock=Clock())

    async def five_pages() -> list[Any]:
        return list(await asyncio.gather(*(reads.get("/healthz", None) for _ in range(5))))

    answers = asyncio.run(five_pages())
    assert node.reads == [("/healthz", None)]
    assert answers == [{"path": "/healthz", "read": 1}] * 5


def test_an_answer_serves_for_max_age_then_is_read_again() -> None:
    node, clock = Appliance(), Clock()
    reads = SharedReads(node.fetch, max_age_s=1.5, clock=clock)

    async def scenario() -> list[Any]:
        first = await reads.get("/healthz", None)
        clock.now += 1.4
        kept = await reads.get("/healthz", None)
        clock.now += 0.2
        fresh = await reads.get("/healthz", None)
        return [first["read"], kept["read"], fresh["read"]]

    assert asyncio.run(scenario()) == [1, 1, 2]


def test_an_answer_ages_from_when_it_was_asked() -> None:
    """A page polling alone every max_age_s reads afresh each time, however slow the
    appliance was to answer."""
    node, clock = Appliance(), Clock()
    reads = SharedReads(node.fetch, max_age_s=2.7, clock=clock)

    async def slow_answers() -> list[int]:
        read = []
        for _ in range(3):
            pending = asyncio.ensure_future(reads.get("/healthz", None))
            await asyncio.sleep(0)
            clock.now += 0.5  # the answer takes half a second
            read.append((await pending)["read"])
            clock.now += 2.5  # the page's next poll, 3 s after the last one began
        return read

    assert asyncio.run(slow_answers()) == [1, 2, 3]


def test_answers_are_kept_per_token() -> None:
    node = Appliance()
    reads = SharedReads(node.fetch, max_age_s=1.5, clock=Clock())

    async def two_users() -> None:
        await reads.get("/api/v1/sync/status", "token-a")
        await reads.get("/api/v1/sync/status", "token-b")
        await reads.get("/api/v1/sync/status", "token-a")

    asyncio.run(two_users())
    assert node.reads == [("/api/v1/sync/status", "token-a"), ("/api/v1/sync/status", "token-b")]


def test_a_failure_reaches_every_waiter_and_is_not_kept() -> None:
    node = Appliance()
    node.failing = True
    reads = SharedReads(node.fetch, max_age_s=1.5, clock=Clock())

    async def scenario() -> tuple[list[Any], Any]:
        failed = await asyncio.gather(
            *(reads.get("/healthz", None) for _ in range(3)), return_exceptions=True
        )
        node.failing = False
        return failed, await reads.get("/healthz", None)

    failed, after = asyncio.run(scenario())
    assert all(isinstance(err, ApiError) and err.code == "appliance_unreachable" for err in failed)
    assert after == {"path": "/healthz", "read": 2}


def test_a_page_closed_while_waiting_leaves_the_read_to_the_others() -> None:
    node = Appliance()
    reads = SharedReads(node.fetch, max_age_s=1.5, clock=Clock())

    async def scenario() -> Any:
        closed = asyncio.ensure_future(reads.get("/healthz", None))
        staying = asyncio.ensure_future(reads.get("/healthz", None))
        await asyncio.sleep(0)
        closed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closed
        return await staying

    assert asyncio.run(scenario()) == {"path": "/healthz", "read": 1}
    assert len(node.reads) == 1


def test_pages_told_of_a_change_share_one_read_made_after_it() -> None:
    """An answer kept, or a read begun, before the change was heard does not serve a
    page refreshing for that change; the pages refreshing for it share one read."""
    node, clock = Appliance(), Clock()
    reads = SharedReads(node.fetch, max_age_s=2.7, clock=clock)

    async def scenario() -> tuple[Any, list[Any], Any]:
        before = asyncio.ensure_future(reads.get("/api/v1/alerts", None))
        await asyncio.sleep(0)
        clock.now += 0.1
        heard = clock.now  # the alert fired while that read was under way
        told = await asyncio.gather(*(reads.get("/api/v1/alerts", None, heard) for _ in range(5)))
        polled = await reads.get("/api/v1/alerts", None)
        return await before, told, polled

    before, told, polled = asyncio.run(scenario())
    assert len(node.reads) == 2
    assert all(answer is told[0] for answer in told) and told[0] is not before
    assert polled is told[0], "the newer read is the one kept"
