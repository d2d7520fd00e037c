"""Each registry worker's periodic look for running rollouts to move on.

The rollout's whole state is in the database, so every worker runs this loop and
none is special: the rollout's row lock makes their steps take turns, and a worker
that dies leaves nothing behind that another one needs.
"""

from __future__ import annotations

import asyncio
import logging
import time

import peewee

from registry.context import Registry
from registry.services.rollout_step import tick
from towerbox_core.errors import TowerboxError

log = logging.getLogger(__name__)


class RolloutTicker:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._registry.cfg.rollouts.tick_s > 0:
            self._task = asyncio.create_task(self._loop(), name="rollout-ticker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        registry = self._registry
        while True:
            await asyncio.sleep(registry.cfg.rollouts.tick_s)
            started = time.monotonic()
            try:
                await registry.run_db(tick, registry.sites.status)
            except (TowerboxError, OSError, peewee.DatabaseError) as err:
                # A database restart or a lock held too long: the next tick retries.
                log.warning("rollout step failed, retrying at the next tick: %s", err)
            took = time.monotonic() - started
            if took > registry.cfg.rollouts.tick_s:
                log.warning("rollout step took %.2f s, longer than tick_s", took)
