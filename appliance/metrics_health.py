"""Node-health metrics: hugepages, exclusive cores, the journal's sync position, the
WAN, scheduled jobs, failures, the state disk and the firing alerts.

Read at scrape time from the same readings the alert rules evaluate
(``appliance.services.health_readings``), so the exported figures and the node's
own alerts never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance.domain.alerts.readings import NodeHealth
from appliance.domain.alerts.rules import Severity
from towerbox_core.api.alerts import AlertView


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class HealthCollector(Collector):
    def __init__(
        self, health: Callable[[], NodeHealth], alerts: Callable[[], list[AlertView]]
    ) -> None:
        self._health = health
        self._alerts = alerts

    def collect(self) -> Iterator[Metric]:
        h = self._health()
        pages_free = _gauge(
            "towerbox_hugepages_free", "Hugepages no VM holds", ("size", "numa_node")
        )
        pages_total = _gauge(
            "towerbox_hugepages_total", "Hugepages in the pool", ("size", "numa_node")
        )
        for p in h.hugepages:
            pages_free.add_metric([p.size, str(p.numa_node)], p.free)
            pages_total.add_metric([p.size, str(p.numa_node)], p.total)
        yield pages_free
        yield pages_total
        cores = _gauge(
            "towerbox_cores_exclusive_free",
            "Whole cores free to pin to a VM exclusively",
            ("numa_node",),
        )
        for node, free in sorted(h.cores_free.items()):
            cores.add_metric([str(node)], free)
        yield cores
        yield from self._journal_and_wan(h)
        yield from self._jobs(h)
        yield from self._failures(h)
        disk_free = _gauge("towerbox_state_disk_free_bytes", "Free bytes on the state disk")
        disk_size = _gauge("towerbox_state_disk_size_bytes", "Size of the state disk in bytes")
        if h.disk_free is not None and h.disk_size is not None:
            disk_free.add_metric([], h.disk_free)
            disk_size.add_metric([], h.disk_size)
        yield disk_free
        yield disk_size
        yield from self._alert_families()

    @staticmethod
    def _journal_and_wan(h: NodeHealth) -> Iterator[Metric]:
        for name, doc, value in (
            ("towerbox_journal_head_seq", "Seq of the newest journal entry", h.journal_head),
            (
                "towerbox_journal_unacked_entries",
                "Journal entries the registry has not acknowledged",
                h.journal_unacked,
            ),
            (
                "towerbox_journal_oldest_unacked_age_seconds",
                "Age of the oldest journal entry the registry has not acknowledged (0: none)",
                h.journal_oldest_unacked_age_s,
            ),
            ("towerbox_wan_up", "1 when the edge agent reports the WAN online", int(h.wan_up)),
        ):
            family = _gauge(name, doc)
            family.add_metric([], value)
            yield family
        last_sync = _gauge(
            "towerbox_wan_last_sync_timestamp_seconds",
            "When the edge agent last synced with the registry (absent: never)",
        )
        if h.wan_last_sync is not None:
            last_sync.add_metric([], h.wan_last_sync)
        yield last_sync

    @staticmethod
    def _jobs(h: NodeHealth) -> Iterator[Metric]:
        nxt = _gauge("towerbox_job_next_run_timestamp_seconds", "A job's next run", ("job",))
        last = _gauge("towerbox_job_last_run_timestamp_seconds", "A job's last run", ("job",))
        ok = _gauge(
            "towerbox_job_last_success", "1 when a job's last run succeeded, 0 if not", ("job",)
        )
        for j in h.jobs:
            if j.next_run is not None:
                nxt.add_metric([j.job], j.next_run)
            if j.last_run is not None:
                last.add_metric([j.job], j.last_run)
            if j.last_success is not None:
                ok.add_metric([j.job], int(j.last_success))
        yield nxt
        yield last
        yield ok

    @staticmethod
    def _failures(h: NodeHealth) -> Iterator[Metric]:
        artifacts = CounterMetricFamily(
            "towerbox_artifact_failures", "Artifact fetches that failed since the daemon started"
        )
        artifacts.add_metric([], h.artifact_failures)
        yield artifacts
        applies = CounterMetricFamily(
            "towerbox_apply_failures",
            "Applies that failed since the daemon started, by what was applied",
            labels=("kind",),
        )
        for kind, count in sorted(h.apply_failures.items()):
            applies.add_metric([kind], count)
        yield applies

    def _alert_families(self) -> Iterator[Metric]:
        active = _gauge(
            "towerbox_alert_active", "1 per firing alert", ("alert", "object", "severity")
        )
        firing = {s.value: 0 for s in Severity}
        for a in self._alerts():
            active.add_metric([a.rule, a.object, a.severity], 1)
            firing[a.severity] = firing.get(a.severity, 0) + 1
        yield active
        by_severity = _gauge("towerbox_alerts_firing", "Firing alerts by severity", ("severity",))
        for severity, count in firing.items():
            by_severity.add_metric([severity], count)
        yield by_severity

    def describe(self) -> Iterator[Metric]:
        # Registering must not read the node.
        return iter(())
