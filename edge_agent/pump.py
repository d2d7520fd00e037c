"""The journal pump: appliance → registry in bounded batches, then ack the appliance.

The registry's answer (its highest contiguous seq) is the only cursor: after a
restart, a cut or a ``sequence_gap`` the pump asks the registry where it stands, so
the agent keeps nothing on disk that could disagree. Every send is a safe resend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from edge_agent.appliance_link import ApplianceLink
from edge_agent.backoff import Backoff
from edge_agent.errors import Refused, SequenceGap, Unreachable
from edge_agent.link_state import LinkState
from edge_agent.registry_link import RegistryLink, encode_batch

log = logging.getLogger(__name__)


class JournalPump:
    def __init__(
        self,
        appliance: ApplianceLink,
        registry: RegistryLink,
        link: LinkState,
        backoff: Backoff,
        batch_size: int,
        poll_s: float,
    ) -> None:
        self._appliance = appliance
        self._registry = registry
        self._link = link
        self._backoff = backoff
        self._batch_size = batch_size
        self._poll_s = poll_s
        self.registry_seq: int | None = None  # None: ask the registry first
        self.appliance_head = 0
        self.batches = 0
        self._appliance_trouble: str | None = None  # what was last logged of it

    @property
    def queued(self) -> int:
        return max(0, self.appliance_head - (self.registry_seq or 0))

    async def step(self) -> bool:
        """Ship one batch. True when there was something to ship."""
        if self.registry_seq is None:
            self.registry_seq = await self._registry.head()
            self._link.ok()
        page = await self._appliance.journal(self.registry_seq, self._batch_size)
        self.appliance_head = page.head
        if not page.entries:
            if page.acked_seq < self.registry_seq <= page.head:
                await self._appliance.ack(self.registry_seq)
            return False
        body, _ = encode_batch(page.entries, page.compacted_through)
        ack = await self._registry.post_batch(body)
        self._link.ok(synced=True)
        self.batches += 1
        self.registry_seq = ack.acked_seq
        await self._appliance.ack(min(ack.acked_seq, page.head))
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                busy = await self.step()
                self._backoff.reset()
                if self._appliance_trouble is not None:
                    log.info("the appliance takes journal acks again")
                    self._appliance_trouble = None
                if busy:
                    continue
                delay = self._poll_s
            except SequenceGap as err:
                log.warning("%s; resuming from the registry's head", err.message)
                self.registry_seq = None
                delay = self._backoff.next_delay()
            except Unreachable as err:
                self._note(err.where, err.message, err.problem_code)
                self.registry_seq = None  # the registry may have moved on (another agent run)
                delay = self._backoff.next_delay()
            except Refused as err:
                # A conflict or a refused batch does not heal by resending at once.
                log.error("journal batch refused: %s", err.message)
                self._note(err.where, err.message)
                self.registry_seq = None
                delay = self._backoff.next_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    def _note(self, where: str, message: str, problem_code: str | None = None) -> None:
        if where == "registry":
            self._link.failed(message)
            return
        # Once per kind of trouble, not at every retry: a full disk lasts.
        trouble = problem_code or message
        if trouble == self._appliance_trouble:
            return
        self._appliance_trouble = trouble
        if problem_code == "storage_full":
            log.error(
                "the appliance's state disk is full (%s): batches still ship, but its "
                "journal acks wait until space returns there",
                message,
            )
        else:
            log.warning("%s", message)
