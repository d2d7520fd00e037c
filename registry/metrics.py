"""The registry's Prometheus metrics: fleet figures read from the database at scrape
time, and the API's own latency and refusals counted in process.

Several workers (PostgreSQL) each count their own requests, and a scrape reaches one
of them: a per-process counter would then jump between workers' values. So the
fleet figures, ingest counts included, come from the database (the same whichever
worker answers), and the in-process families run in prometheus_client's multiprocess
mode when the server starts several workers: each worker writes its values to a file
in PROMETHEUS_MULTIPROC_DIR and a scrape sums them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from registry.store.fleet_stats import (
    LAG_BOUNDS,
    MAX_VERSIONS_PER_COMPONENT,
    SILENT_BOUNDS,
    FleetStats,
)
from towerbox_core.api.rollouts import ROLLOUT_STATES

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class FleetCollector(Collector):
    """``towerbox_registry_*`` fleet families from one read of the database."""

    def __init__(self, read: Callable[[], FleetStats]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        stats = self._read()
        sites = GaugeMetricFamily(
            "towerbox_registry_sites",
            "Sites by status from their last contact: pending (never), online, stale, offline",
            labels=("status",),
        )
        for status, count in stats.sites_by_status.items():
            sites.add_metric([status], count)
        yield sites
        lagging = GaugeMetricFamily(
            "towerbox_registry_sites_by_lag",
            "Sites whose journal lag (head they reported less entries the registry holds) "
            "is at most le entries; sites that never sent a heartbeat are not counted",
            labels=("le",),
        )
        for bound in LAG_BOUNDS:
            lagging.add_metric([str(bound)], stats.lag_at_most[bound])
        lagging.add_metric(["+Inf"], stats.lag_sites)
        yield lagging
        yield GaugeMetricFamily(
            "towerbox_registry_site_lag_entries_max",
            "The largest journal lag of any site, in entries",
            value=stats.lag_max,
        )
        yield GaugeMetricFamily(
            "towerbox_registry_site_lag_entries_sum",
            "Journal entries the sites reported that the registry does not hold yet, in all",
            value=stats.lag_sum,
        )
        silent = GaugeMetricFamily(
            "towerbox_registry_sites_silent",
            "Enrolled sites whose last contact is older than older_than_seconds",
            labels=("older_than_seconds",),
        )
        for seconds in SILENT_BOUNDS:
            silent.add_metric([str(seconds)], stats.silent_for[seconds])
        yield silent
        # Sums over the site rows: deleting a site lowers them, which Prometheus' rate()
        # reads as a counter reset, as it would a restart.
        yield CounterMetricFamily(
            "towerbox_registry_ingested_entries",
            "Journal entries stored from the sites",
            value=stats.ingested_entries,
        )
        yield CounterMetricFamily(
            "towerbox_registry_ingested_batches",
            "Journal batches accepted from the sites (resends included)",
            value=stats.ingested_batches,
        )
        yield _by_kind(
            "towerbox_registry_desired_conflicts",
            "Desired documents sites rejected or applied with a local conflict",
            stats.conflicts,
            CounterMetricFamily,
        )
        yield _by_kind(
            "towerbox_registry_desired_results",
            "Sites by the last result they reported for each desired-state kind",
            stats.results,
            GaugeMetricFamily,
        )
        documents = GaugeMetricFamily(
            "towerbox_registry_desired_documents",
            "Current desired-state documents by kind and scope (site or group)",
            labels=("kind", "scope"),
        )
        for (kind, scope), count in sorted(stats.documents.items()):
            documents.add_metric([kind, scope], count)
        yield documents
        versions = GaugeMetricFamily(
            "towerbox_registry_sites_by_version",
            "Sites by the version of a component their heartbeats report (towerbox, agent, "
            f"gpu_driver, vgpu_manager); past the {MAX_VERSIONS_PER_COMPONENT} most common "
            'of a component, "other"',
            labels=("component", "version"),
        )
        for (component, version), count in sorted(stats.versions.items()):
            versions.add_metric([component, version], count)
        yield versions
        rollouts = GaugeMetricFamily(
            "towerbox_registry_rollouts",
            "Staged rollouts by state (every state, 0 included)",
            labels=("state",),
        )
        for state in ROLLOUT_STATES:
            rollouts.add_metric([state], stats.rollouts.get(state, 0))
        yield rollouts

    def describe(self) -> Iterator[Metric]:
        return iter(())  # registering must not read the database


def _by_kind(
    name: str,
    doc: str,
    counts: dict[tuple[str, str], int],
    family: type[CounterMetricFamily] | type[GaugeMetricFamily],
) -> Metric:
    metric = family(name, doc, labels=("kind", "result"))
    for (kind, result), count in sorted(counts.items()):
        metric.add_metric([kind, result], count)
    return metric


class RegistryMetrics:
    def __init__(self, read: Callable[[], FleetStats]) -> None:
        self._process = CollectorRegistry()
        self.api_seconds = Histogram(
            "towerbox_registry_api_request_seconds",
            "Registry API request latency",
            ["method", "route", "status"],
            registry=self._process,
        )
        self.ingest_refusals = Counter(
            "towerbox_registry_ingest_refusals",
            "Journal batches refused, by the problem code the agent got",
            ["code"],
            registry=self._process,
        )
        self._fleet = CollectorRegistry()
        self._fleet.register(FleetCollector(read))

    def render(self) -> bytes:
        process = self._process
        if os.environ.get(MULTIPROC_ENV):
            process = CollectorRegistry()
            MultiProcessCollector(process)  # type: ignore[no-untyped-call]  # every worker's files
        # Two expositions one after the other are one valid exposition.
        return generate_latest(process) + generate_latest(self._fleet)
