"""Day/off-peak GPU schedules: a cron expression, a GPU and the target layout.

Kept in the state database and mirrored into the daemon's scheduler whenever they
change. A run that cannot complete (vRAN protection, a failed step) leaves the GPU
on its last good layout and journals why.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import msgspec
from apscheduler.triggers.cron import CronTrigger

from appliance.domain.vm_spec import check_name
from appliance.errors import InvalidInput, NotFound, TowerboxError
from appliance.services.auth import Principal
from appliance.services.gpu_layouts import GpuLayoutService, LayoutRequest
from appliance.store import journal
from appliance.store.models import Meta

log = logging.getLogger(__name__)

_KEY = "gpu_schedules"
_JOB_PREFIX = "gpu-schedule:"


class Schedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    gpu: str  # GPU UUID
    cron: str  # five fields, UTC: "0 22 * * *" is 22:00 every day
    target: LayoutRequest


def cron_trigger(expr: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expr, timezone="UTC")
    except ValueError as err:
        raise InvalidInput(
            f"bad cron expression {expr!r}: {err}", code="invalid_cron", field="cron"
        ) from err


class GpuSchedules:
    def __init__(self, layouts: GpuLayoutService) -> None:
        self._layouts = layouts
        self._scheduler: Any = None  # apscheduler's scheduler once the daemon runs

    def _all(self) -> dict[str, Schedule]:
        row = Meta.get_or_none(Meta.key == _KEY)
        return msgspec.json.decode(row.value, type=dict[str, Schedule]) if row else {}

    def _save(self, schedules: dict[str, Schedule], kind: str, name: str, state: Any) -> None:
        with journal.write_transaction():
            Meta.insert(
                key=_KEY, value=msgspec.json.encode(schedules).decode()
            ).on_conflict_replace().execute()
            journal.append(kind, "gpu_schedule", name, state)
        self.sync()

    def list(self) -> list[dict[str, Any]]:
        now = dt.datetime.now(dt.UTC)
        result = []
        for name, s in sorted(self._all().items()):
            job = self._scheduler.get_job(_JOB_PREFIX + name) if self._scheduler else None
            nxt = job.next_run_time if job else cron_trigger(s.cron).get_next_fire_time(None, now)
            result.append(
                {
                    "name": name,
                    **msgspec.to_builtins(s),
                    "next_run": nxt.isoformat() if nxt else None,
                }
            )
        return result

    def put(self, principal: Principal, name: str, schedule: Schedule) -> dict[str, Any]:
        principal.require_infra_admin()
        check_name("schedule", name)
        cron_trigger(schedule.cron)
        self._layouts.plan(schedule.gpu, schedule.target)  # refuses a bad GPU or target now
        schedules = {**self._all(), name: schedule}
        self._save(schedules, "gpu.schedule_saved", name, msgspec.to_builtins(schedule))
        return next(s for s in self.list() if s["name"] == name)

    def delete(self, principal: Principal, name: str) -> None:
        principal.require_infra_admin()
        schedules = self._all()
        if schedules.pop(name, None) is None:
            raise NotFound(f"no GPU schedule {name!r}", code="schedule_not_found")
        self._save(schedules, "gpu.schedule_removed", name, None)

    def run(self, name: str) -> bool:
        """One scheduled run; True when the layout was applied."""
        schedule = self._all().get(name)
        if schedule is None:
            return False
        try:
            self._layouts.apply_as_node(schedule.gpu, schedule.target)
        except TowerboxError as err:
            log.error("GPU schedule %s did not run: %s (%s)", name, err.message, err.code)
            with journal.write_transaction():
                journal.append(
                    "gpu.schedule_failed",
                    "gpu_schedule",
                    name,
                    {"code": err.code, "detail": err.message},
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
        for name, s in self._all().items():
            self._scheduler.add_job(
                self.run,
                cron_trigger(s.cron),
                args=[name],
                id=_JOB_PREFIX + name,
                max_instances=1,
                coalesce=True,
            )
