"""The bodies of the daemon's scheduled jobs: the monitor's sweep, the reconcile
pass, the journal's compaction and the alert rules' evaluation.

The scheduler runs them on its threads; each names itself as the journal's actor,
and each skips its journal writes (logged) while the state disk is full rather than
stopping the others.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from appliance.services.events import sweep_changes
from appliance.services.measured import sweep_readings
from appliance.services.metering import now_us
from appliance.services.monitor import owned_states, record_state_changes
from appliance.store import journal
from appliance.store.compaction import compact
from appliance.store.space import skipped_while_full
from towerbox_core.errors import TowerboxError
from towerbox_core.wire import Actor

if TYPE_CHECKING:
    from appliance.context import Appliance

log = logging.getLogger(__name__)


def monitor(app: Appliance) -> None:
    with journal.acting_as(Actor(job="monitor")):
        with skipped_while_full("a clock step"):
            journal.follow_clock_step()
        app.uptime.beat()
        before = app.monitor.snapshot
        snapshot = app.monitor.sweep()
        app.top.observe(snapshot)
        app.metrics.observe_sweep(snapshot.sweep_ms / 1000, owned_states(snapshot))
        with skipped_while_full("the monitor's state changes"):
            record_state_changes(snapshot)
        app.events.vms_changed(sweep_changes(before, snapshot))
        at = now_us()
        gpu_readings = app.gpu_meter.readings(at, snapshot)
        readings = sweep_readings(snapshot, snapshot.vnets) + gpu_readings
        with skipped_while_full("measured usage"):
            app.measured.observe(at, readings)


def reconcile(app: Appliance) -> None:
    with journal.acting_as(Actor(job="reconcile")), skipped_while_full("a reconcile pass"):
        report = app.reconciler.run()
        app.metrics.reconcile_restarts.set(len(report.restarted))
        app.snapshot_metrics.count_restarts(report.restarted)
        app.metrics.drift.set(len(report.drift))
        try:
            app.n6.reapply()
        except TowerboxError as err:
            log.error("N6 paths could not be repaired: %s (%s)", err.message, err.code)


def compaction(app: Appliance) -> None:
    with journal.acting_as(Actor(job="compaction")), skipped_while_full("a compaction"):
        compact(
            app.cfg.journal.keep_entries,
            app.cfg.journal.keep_days,
            before=app.metering.write_rollup,
        )


def alerts(app: Appliance) -> None:
    with journal.acting_as(Actor(job="alerts")), skipped_while_full("an alert evaluation"):
        app.alerts.evaluate(app.health.readings())
