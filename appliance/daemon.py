"""The appliance daemon: API on TCP and a unix socket, jobs, systemd notification.

SIGTERM stops the API and the jobs and nothing else: VMs belong to libvirtd and keep
running, whatever happens to this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Generator
from pathlib import Path

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from appliance.api.app import create_app
from appliance.config import Config
from appliance.context import Appliance, build_appliance
from appliance.store import journal
from appliance.store.journal_clock import MonotonicClock
from towerbox_core import sdnotify
from towerbox_core.errors import ConfigError, TowerboxError
from towerbox_core.http_protocol import set_deadlines
from towerbox_core.logsetup import setup_logging
from towerbox_core.wire import Actor

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The daemon installs its own handlers: uvicorn's would re-raise SIGTERM at
        # exit and turn a clean stop into death by signal.
        yield


def _bind_sockets(cfg: Config) -> list[socket.socket]:
    tcp = socket.socket(socket.AF_INET6 if ":" in cfg.api.host else socket.AF_INET)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        tcp.bind((cfg.api.host, cfg.api.port))
    except OSError as err:
        tcp.close()
        raise ConfigError(
            f"cannot listen on {cfg.api.host}:{cfg.api.port}: {err}", code="listen_failed"
        ) from err
    sockets = [tcp]
    if cfg.api.socket:
        path = Path(cfg.api.socket)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(str(path))
        # Every request still needs a token; the mode only lets local clients connect.
        path.chmod(0o666)
        sockets.append(unix)
    return sockets


async def _watchdog(appliance: Appliance, server: uvicorn.Server, every: float) -> None:
    stale_after = max(60.0, 6 * appliance.cfg.jobs.monitor_interval_s)
    while not server.should_exit:
        taken = appliance.monitor.snapshot.taken_at
        # A wedged monitor (libvirt hung) stops the pings, and systemd restarts us.
        if taken and time.time() - taken > stale_after:
            log.error("monitor sweep is %.0f s old; withholding watchdog ping", time.time() - taken)
        else:
            sdnotify.notify("WATCHDOG=1")
        await asyncio.sleep(every)


async def first_jobs(appliance: Appliance) -> None:
    """A first sweep and reconcile before serving: the API starts with real state.

    One that fails (a QEMU dying under the sweep, libvirtd restarting) is logged and
    runs again on schedule: the node's API must come up after a reboot regardless.
    Then the artifact fetches asked for before a stop cut them short start again.
    """
    for name, job in (("monitor", appliance.monitor_job), ("reconcile", appliance.reconcile_job)):
        try:
            await asyncio.to_thread(job)
        except TowerboxError as err:
            log.error(
                "first %s run failed: %s (%s); it runs again on schedule",
                name,
                err.message,
                err.code,
            )

    def resume() -> None:
        with journal.acting_as(Actor(job="boot")):
            appliance.artifacts.resume_asked()

    try:
        await asyncio.to_thread(resume)  # database writes: off the event loop
    except TowerboxError as err:  # they stay asked for: the next start tries again
        log.error("fetches cut short not resumed: %s (%s)", err.message, err.code)


async def _serve(appliance: Appliance) -> None:
    cfg = appliance.cfg
    loop = asyncio.get_running_loop()
    await first_jobs(appliance)

    scheduler = AsyncIOScheduler()
    jobs = (
        ("monitor", appliance.monitor_job, cfg.jobs.monitor_interval_s),
        ("reconcile", appliance.reconcile_job, cfg.jobs.reconcile_interval_s),
        ("journal-compaction", appliance.compaction_job, cfg.journal.compact_interval_s),
        ("alerts", appliance.alerts_job, cfg.alerts.interval_s),
    )
    for job_id, job, every_s in jobs:
        # A slow run is never overlapped by the next one; missed runs collapse into one.
        scheduler.add_job(
            job, "interval", seconds=every_s, id=job_id, max_instances=1, coalesce=True
        )
    appliance.health.jobs.attach(scheduler)
    scheduler.start()
    appliance.gpu_schedules.attach(scheduler)
    appliance.precache.attach(scheduler)
    # Everything made at start-up lives as long as the daemon: keep it out of the
    # collector's full passes, which would otherwise grow with the node's size.
    gc.collect()
    gc.freeze()

    sockets = _bind_sockets(cfg)
    server = _Server(
        uvicorn.Config(
            create_app(appliance),
            log_config=None,
            lifespan="on",
            access_log=False,
            ssl_certfile=cfg.api.tls_cert or None,
            ssl_keyfile=cfg.api.tls_key or None,
            # Hostile clients: slow senders are cut off, idle connections closed, and
            # past max_connections new requests get 503 rather than memory.
            http=set_deadlines(
                cfg.api.header_timeout_s, cfg.api.body_timeout_s, cfg.api.body_min_bytes_per_s
            ),
            timeout_keep_alive=max(1, round(cfg.api.keep_alive_s)),
            limit_concurrency=cfg.api.max_connections,
            h11_max_incomplete_event_size=16 * 1024,
        )
    )

    def stop(signame: str) -> None:
        log.info("%s received: stopping the API and jobs; VMs keep running", signame)
        server.should_exit = True
        # Open event streams would keep the server waiting for their connections.
        appliance.events.close()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)

    serving = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    watchdog_task = None
    if server.started:
        scheme = "https" if cfg.api.tls_cert else "http"
        log.info(
            "API on %s://%s:%d and unix:%s", scheme, cfg.api.host, cfg.api.port, cfg.api.socket
        )
        sdnotify.notify(
            f"READY=1\nSTATUS=serving; libvirt: {appliance.backend.describe()}"
            f"\nMAINPID={os.getpid()}"
        )
        every = sdnotify.watchdog_interval_s()
        if every:
            watchdog_task = asyncio.create_task(_watchdog(appliance, server, every))
    try:
        await serving
    finally:
        sdnotify.notify("STOPPING=1")
        if watchdog_task:
            watchdog_task.cancel()
        scheduler.shutdown(wait=False)
        if cfg.api.socket:
            Path(cfg.api.socket).unlink(missing_ok=True)


def run_daemon(cfg: Config) -> int:
    setup_logging(cfg.log_level)
    # Entries count on the monotonic clock from here (journal_clock): a stepped wall
    # clock never makes usage negative or counts it twice.
    journal.set_clock(MonotonicClock(journal.newest_time))
    appliance = build_appliance(cfg)
    try:
        asyncio.run(_serve(appliance))
    finally:
        appliance.close()
    log.info("appliance stopped")
    return 0
