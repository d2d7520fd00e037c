"""Off-peak pre-caching: missing artifacts are fetched only inside a cron window.

The window opens at each ``[artifacts] precache_cron`` time (UTC) and stays open
``precache_minutes``. A periodic tick starts the fetches of missing artifacts while
it is open; each fetch checks the window before it keeps a chunk, so a fetch still
running when the window closes pauses (its partial file stays) and resumes, by HTTP
Range, in the next window. An explicit fetch through the API is not bound by it.

A fetch that failed waits for the next window. One whose file had another sha256
than the catalog says (quarantined) is held back until the catalog names another url
or sha256 for it (the hold is kept in the state database, across restarts): every
window would download the same wrong file again over the site's backhaul. The plan
says so; an explicit fetch still tries, and one that succeeds ends the hold.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import msgspec
from apscheduler.triggers.cron import CronTrigger

from appliance.backends.artifacts.http_fetch import HASH_MISMATCH
from appliance.services.artifact_progress import FetchTracker
from appliance.services.artifacts import ArtifactService
from appliance.store import journal
from appliance.store.models import Meta
from towerbox_core.api.artifacts import PlanItem, PrecachePlan
from towerbox_core.errors import TowerboxError

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
_JOB_ID = "artifact-precache"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Precache:
    def __init__(self, service: ArtifactService, clock: Clock = _utcnow) -> None:
        self.service = service
        conf = service.conf
        self.cron = conf.precache_cron or None
        self.length = dt.timedelta(minutes=conf.precache_minutes)
        self._trigger = CronTrigger.from_crontab(self.cron, timezone="UTC") if self.cron else None
        self.clock = clock
        # name -> (the window it was started in, its fetch, the url and sha256 it was
        # for): a failure waits a window, a wrong file a change of either.
        self._started: dict[str, tuple[dt.datetime, FetchTracker, tuple[str, str]]] = {}
        # name -> the (url, sha256) whose pre-cache got a file with another hash; kept in
        # the state database, so a restart does not download the wrong file once more.
        self._held: dict[str, tuple[str, str]] = _load_held()

    def window(self, at: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime] | None:
        """The window open at ``at`` (default now), else the next one; None if none."""
        if self._trigger is None:
            return None
        now = at or self.clock()
        # The first start after (now - length): open now when it is not in the future.
        start: dt.datetime | None = self._trigger.get_next_fire_time(None, now - self.length)
        if start is None:
            return None
        if start > now:
            start = self._trigger.get_next_fire_time(None, now) or start
        return start, start + self.length

    def in_window(self) -> bool:
        now = self.clock()
        window = self.window(now)
        return window is not None and window[0] <= now < window[1]

    def missing(self) -> list[PlanItem]:
        """Artifacts with a url that are not on disk: what the window will fetch, and
        those it holds back (``held`` says why)."""
        store = self.service.store
        items = []
        held_before = dict(self._held)
        for name, need in sorted(self.service.needed().items()):
            if store.present_size(name) is not None:
                self._held.pop(name, None)  # fetched after all (an explicit fetch)
                continue
            if need.conflict or need.ref.url is None:
                continue
            size = need.ref.size
            left = None if size is None else max(size - store.partial_size(name), 0)
            held = ""
            if self._got_wrong_file(name, (need.ref.url, need.ref.sha256)):
                held = (
                    "held back: the last fetch got a file with another sha256 (quarantined); "
                    "correct the catalog entry's sha256 or url, or fetch it explicitly"
                )
            items.append(PlanItem(name=name, bytes_left=left, url=need.ref.url, held=held))
        if self._held != held_before:
            _save_held(self._held)
        return items

    def _got_wrong_file(self, name: str, source: tuple[str, str]) -> bool:
        """Whether a pre-cache of ``name`` from this url, for this sha256, got a file
        with another hash (this run's last one, or one before a restart)."""
        earlier = self._started.get(name)
        if earlier is not None and earlier[2] == source:
            if earlier[1].error_code == HASH_MISMATCH:
                self._held[name] = source
            elif earlier[1].state == "done":
                self._held.pop(name, None)
        return self._held.get(name) == source

    def plan(self) -> PrecachePlan:
        window = self.window()
        items = self.missing()
        return PrecachePlan(
            window_cron=self.cron,
            window_minutes=int(self.length.total_seconds() // 60),
            in_window=self.in_window(),
            next_start=window[0].isoformat() if window else None,
            next_end=window[1].isoformat() if window else None,
            bandwidth_bytes_s=self.service.conf.bandwidth_bytes_s,
            items=items,
            total_bytes=sum(i.bytes_left or 0 for i in items if not i.held),
        )

    def tick(self) -> list[str]:
        """Start the fetches of missing artifacts when the window is open; their names.

        One that failed since this window opened (a bad hash, a dead origin) waits for
        the next window rather than being fetched again at every tick.
        """
        now = self.clock()
        window = self.window(now)
        if window is None or not window[0] <= now < window[1]:
            return []
        active = self.service.active_names()
        started = []
        needed = self.service.needed()
        for item in self.missing():
            need = needed.get(item.name)  # None: a catalog change took it away meanwhile
            if item.held or need is None:
                continue
            earlier = self._started.get(item.name)
            if earlier is not None and earlier[0] == window[0] and earlier[1].state == "failed":
                continue
            if item.name in active:
                continue
            try:
                tracker = self.service.submit(item.name, "precache", should_stop=self._closed)
            except TowerboxError as err:
                log.error("pre-cache of %s not started: %s (%s)", item.name, err.message, err.code)
                continue
            source = (item.url, need.ref.sha256)
            self._started[item.name] = (window[0], tracker, source)
            started.append(item.name)
        if started:
            log.info("pre-cache window open: fetching %s", ", ".join(started))
        return started

    def _closed(self) -> bool:
        return not self.in_window()

    def attach(self, scheduler: Any) -> None:
        if self._trigger is None:
            return
        scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.service.conf.precache_check_s,
            id=_JOB_ID,
            max_instances=1,
            coalesce=True,
            next_run_time=dt.datetime.now(dt.UTC),
        )


_HELD_KEY = "artifacts_precache_held"


def _load_held() -> dict[str, tuple[str, str]]:
    row = Meta.get_or_none(Meta.key == _HELD_KEY)
    if row is None:
        return {}
    try:
        return msgspec.json.decode(row.value, type=dict[str, tuple[str, str]])
    except msgspec.DecodeError as err:  # a damaged record costs one more try, no more
        log.warning("pre-cache holds unreadable, starting without them: %s", err)
        return {}


def _save_held(held: dict[str, tuple[str, str]]) -> None:
    with journal.write_transaction():
        Meta.insert(
            key=_HELD_KEY, value=msgspec.json.encode(held).decode()
        ).on_conflict_replace().execute()
