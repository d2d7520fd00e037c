"""The daemon's scheduled jobs: when each runs next, when it last ran and whether
that run succeeded. Fed by the scheduler's events; read by the alert rules and the
node-health metrics.

A job fails when it raises, or when it returns False: a GPU schedule run catches its
own errors (it journals them and leaves the GPU as it was) and reports them so.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent

from appliance.domain.alerts.readings import JobReading

log = logging.getLogger(__name__)


class JobBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, bool, str]] = {}  # job -> (at, ok, error)
        self._scheduler: Any = None

    def attach(self, scheduler: Any) -> None:
        self._scheduler = scheduler
        scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.exception is not None:
            self.record(event.job_id, False, f"{type(event.exception).__name__}: {event.exception}")
        else:
            self.record(event.job_id, event.retval is not False, "the run reported a failure")

    def record(self, job: str, ok: bool, error: str = "", at: float | None = None) -> None:
        with self._lock:
            self._last[job] = (time.time() if at is None else at, ok, "" if ok else error)

    def readings(self) -> tuple[JobReading, ...]:
        """Every scheduled job; once a scheduler is attached, a job it no longer holds
        (a GPU schedule removed) is no longer reported."""
        with self._lock:
            last = dict(self._last)
        upcoming: dict[str, float | None] = {}
        if self._scheduler is not None:
            for job in self._scheduler.get_jobs():
                nxt = job.next_run_time
                upcoming[job.id] = nxt.timestamp() if nxt else None
        else:
            upcoming = dict.fromkeys(last)
        result = []
        for job_id in sorted(upcoming):
            at, ok, error = last.get(job_id, (None, None, ""))
            result.append(JobReading(job_id, upcoming[job_id], at, ok, error))
        return tuple(result)
