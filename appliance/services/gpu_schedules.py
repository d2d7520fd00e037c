"""Day/off-peak GPU schedules: a cron expression, a GPU and the target layout.

Two sources: ``[gpu.schedules]`` in the configuration (read-only through the API,
one job per GPU it covers) and schedules made through the API, kept in the state
database. Both are mirrored into the daemon's scheduler. A run that cannot complete
(vRAN protection, a failed step) leaves the GPU on its last good layout and journals
why.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec
from apscheduler.triggers.cron import CronTrigger

from appliance.config import GpuScheduleConfig
from appliance.domain.gpu.target import LayoutRequest
from appliance.services.auth import Principal
from appliance.services.gpu_layouts import GpuLayoutService
from appliance.store import journal
from appliance.store.models import Meta
from towerbox_core.api.gpus import Schedule, ScheduleView
from towerbox_core.errors import Conflict, InvalidInput, NotFound, TowerboxError
from towerbox_core.names import check_name
from towerbox_core.wire import Actor

log = logging.getLogger(__name__)

_KEY = "gpu_schedules"
_JOB_PREFIX = "gpu-schedule:"


def cron_trigger(expr: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expr, timezone="UTC")
    except ValueError as err:
        raise InvalidInput(
            f"bad cron expression {expr!r}: {err}", code="invalid_cron", field="cron"
        ) from err


class _Job(NamedTuple):
    job_id: str
    name: str
    source: str  # "config" or "api"
    schedule: Schedule


class GpuSchedules:
    def __init__(
        self,
        layouts: GpuLayoutService,
        configured: Mapping[str, GpuScheduleConfig] | None = None,
    ) -> None:
        self._layouts = layouts
        self._configured = dict(configured or {})
        self._scheduler: Any = None  # apscheduler's scheduler once the daemon runs

    def _all(self) -> dict[str, Schedule]:
        row = Meta.get_or_none(Meta.key == _KEY)
        return msgspec.json.decode(row.value, type=dict[str, Schedule]) if row else {}

    def _from_config(self) -> list[_Job]:
        """One job per configured schedule and GPU it covers, in name then GPU order."""
        mig_gpus = [g.uuid for g in self._layouts.backend.list_gpus() if g.mig_supported]
        jobs = []
        for name, conf in sorted(self._configured.items()):
            target = LayoutRequest(layout=conf.layout)
            for gpu in [conf.gpu] if conf.gpu else mig_gpus:
                job_id = f"{_JOB_PREFIX}config:{name}:{gpu}"
                jobs.append(_Job(job_id, name, "config", Schedule(gpu, conf.cron, target)))
        return jobs

    def _jobs(self) -> list[_Job]:
        stored = [
            _Job(_JOB_PREFIX + name, name, "api", s) for name, s in sorted(self._all().items())
        ]
        return self._from_config() + stored

    def _save(self, schedules: dict[str, Schedule], kind: str, name: str, state: Any) -> None:
        with journal.write_transaction():
            Meta.insert(
                key=_KEY, value=msgspec.json.encode(schedules).decode()
            ).on_conflict_replace().execute()
            journal.append(kind, "gpu_schedule", name, state)
        self.sync()

    def list(self) -> list[ScheduleView]:
        now = dt.datetime.now(dt.UTC)
        result = []
        for job_id, name, source, s in self._jobs():
            job = self._scheduler.get_job(job_id) if self._scheduler else None
            nxt = job.next_run_time if job else cron_trigger(s.cron).get_next_fire_time(None, now)
            result.append(
                ScheduleView(
                    name=name,
                    source=source,
                    gpu=s.gpu,
                    cron=s.cron,
                    target=s.target,
                    next_run=nxt.isoformat() if nxt else None,
                )
            )
        return result

    def _refuse_configured(self, name: str) -> None:
        if name in self._configured:
            raise Conflict(
                f"GPU schedule {name!r} comes from the configuration; change it there",
                code="schedule_from_config",
            )

    def put(self, principal: Principal, name: str, schedule: Schedule) -> ScheduleView:
        principal.require_infra_admin()
        check_name("schedule", name)
        self._refuse_configured(name)
        cron_trigger(schedule.cron)
        self._layouts.plan(schedule.gpu, schedule.target)  # refuses a bad GPU or target now
        schedules = {**self._all(), name: schedule}
        self._save(schedules, "gpu.schedule_saved", name, msgspec.to_builtins(schedule))
        return next(s for s in self.list() if s.name == name and s.source == "api")

    def delete(self, principal: Principal, name: str) -> None:
        principal.require_infra_admin()
        self._refuse_configured(name)
        schedules = self._all()
        if schedules.pop(name, None) is None:
            raise NotFound(f"no GPU schedule {name!r}", code="schedule_not_found")
        self._save(schedules, "gpu.schedule_removed", name, None)

    def run(self, name: str, gpu: str | None = None) -> bool:
        """One scheduled run (every GPU it covers, or just ``gpu``); True when all applied."""
        jobs = [
            j for j in self._jobs() if j.name == name and (gpu is None or j.schedule.gpu == gpu)
        ]
        with journal.acting_as(Actor(job=f"gpu-schedule:{name}")):
            results = [self._run_one(j.name, j.schedule) for j in jobs]
        return bool(results) and all(results)

    def _run_one(self, name: str, schedule: Schedule) -> bool:
        try:
            self._layouts.apply_as_node(schedule.gpu, schedule.target)
        except TowerboxError as err:
            log.error(
                "GPU schedule %s did not run on %s: %s (%s)",
                name,
                schedule.gpu,
                err.message,
                err.code,
                extra={"gpu": schedule.gpu},
            )
            with journal.write_transaction():
                journal.append(
                    "gpu.schedule_failed",
                    "gpu_schedule",
                    name,
                    {"gpu": schedule.gpu, "code": err.code, "detail": err.message},
                )
            return False
        return True

    def attach(self, scheduler: Any) -> None:
        self._scheduler = scheduler
        self.sync()

    def sync(self) -> None:
        """Make the scheduler's jobs match the stored schedules."""
        if self._scheduler is None:
            return
        for job in self._scheduler.get_jobs():
            if job.id.startswith(_JOB_PREFIX):
                job.remove()
        for job_id, name, _, s in self._jobs():
            self._scheduler.add_job(
                self.run,
                cron_trigger(s.cron),
                args=[name, s.gpu],
                id=job_id,
                max_instances=1,
                coalesce=True,
            )


__all__ = ["GpuSchedules", "Schedule", "cron_trigger"]
