"""The agent's run loop: journal pump, heartbeat, desired state and status, each on
its own task so a long backlog never silences the heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from edge_agent import __version__
from edge_agent.appliance_link import ApplianceLink
from edge_agent.backoff import Backoff
from edge_agent.blob_relay import BlobRelay
from edge_agent.config import AgentConfig
from edge_agent.desired import DesiredPuller
from edge_agent.errors import Refused, Unreachable
from edge_agent.heartbeat import HeartbeatBuilder
from edge_agent.link_state import LinkState
from edge_agent.provision import provision, wants_provisioning
from edge_agent.pump import JournalPump
from edge_agent.registry_link import RegistryLink
from edge_agent.state import load_enrollment, read_token
from towerbox_core.client import async_http
from towerbox_core.wire import AgentStatus, DesiredIndexItem

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.enrollment = load_enrollment(cfg.state_file)
        token = read_token(Path(cfg.token_file))
        ca = cfg.ca_file or self.enrollment.ca_file
        timeout = cfg.request_timeout_s
        self.appliance = ApplianceLink(async_http(cfg.appliance_url, timeout=timeout, token=token))
        self.registry = RegistryLink(
            async_http(
                self.enrollment.registry_url,
                timeout=timeout,
                ca_file=ca,
                token=self.enrollment.secret,
            )
        )
        self.relay: BlobRelay | None = None
        if cfg.relay_socket:
            # A client of its own: long blob transfers never hold up heartbeats and batches.
            self.relay = BlobRelay(
                cfg.relay_socket,
                async_http(
                    self.enrollment.registry_url,
                    timeout=timeout,
                    ca_file=ca,
                    token=self.enrollment.secret,
                ),
            )
        self.link = LinkState()
        self.pump = JournalPump(
            self.appliance,
            self.registry,
            self.link,
            Backoff(cfg.backoff_base_s, cfg.backoff_cap_s),
            cfg.batch_size,
            cfg.poll_s,
        )
        self.desired = DesiredPuller(self.appliance, self.registry)
        self._index: asyncio.Queue[list[DesiredIndexItem]] = asyncio.Queue(maxsize=1)
        self.heartbeats = 0
        self.beats = HeartbeatBuilder(self.appliance)

    async def heartbeat_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff(self.cfg.backoff_base_s, self.cfg.backoff_cap_s)
        while not stop.is_set():
            beat = await self.beats.build(self.pump.appliance_head, self.pump.queued)
            try:
                reply = await self.registry.heartbeat(beat)
                self.heartbeats += 1
                self.link.ok()
                backoff.reset()
                delay = 0.0 if self.beats.answered(beat, reply) else self.cfg.heartbeat_s
                if self._index.full():
                    self._index.get_nowait()
                self._index.put_nowait(reply.desired)
            except (Unreachable, Refused) as err:
                if isinstance(err, Refused) and self.beats.refused(beat, err):
                    continue
                self.link.failed(err.message)
                # Never slower than the interval, so a returning link is seen soon.
                delay = min(self.cfg.heartbeat_s, backoff.next_delay())
            await _sleep(stop, delay)

    async def desired_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            getter = asyncio.ensure_future(self._index.get())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not getter.done():
                getter.cancel()
                return
            await self.desired.sync(getter.result())

    async def status_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            status = AgentStatus(
                state=self.link.state,
                registry_url=self.enrollment.registry_url,
                site=self.enrollment.site,
                queued=self.pump.queued,
                acked_seq=self.pump.registry_seq or 0,
                since=self.link.since,
                last_sync_at=self.link.last_sync_at,
                last_error=self.link.last_error,
                heartbeat_s=self.cfg.heartbeat_s,
            )
            try:
                await self.appliance.put_status(status)
            except (Unreachable, Refused) as err:
                log.warning("cannot report sync status to the appliance: %s", err.message)
            await _sleep(stop, min(self.cfg.heartbeat_s, 5.0))

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "agent %s for site %s: registry %s, appliance %s",
            __version__,
            self.enrollment.site,
            self.enrollment.registry_url,
            self.cfg.appliance_url,
        )
        if self.relay is not None:
            try:
                await self.relay.start()
            except OSError as err:
                # Sync matters more than blobs: run without the relay, say why.
                log.error("blob relay not started on %s: %s", self.cfg.relay_socket, err)
                await self.relay.close()
                self.relay = None
        tasks = [
            asyncio.create_task(self.pump.run(stop), name="pump"),
            asyncio.create_task(self.heartbeat_loop(stop), name="heartbeat"),
            asyncio.create_task(self.desired_loop(stop), name="desired"),
            asyncio.create_task(self.status_loop(stop), name="status"),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.relay is not None:
                await self.relay.close()
            await self.appliance.close()
            await self.registry.close()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _main(cfg: AgentConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if wants_provisioning(cfg) and await provision(cfg, stop) is None:
        return  # stopped before the registry answered
    agent = Agent(cfg)
    await agent.run(stop)


def run_agent(cfg: AgentConfig) -> int:
    asyncio.run(_main(cfg))
    log.info("agent stopped")
    return 0
