"""Prometheus metrics of the appliance, on a registry of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance.backends.vm.protocol import DomainState

# (tenant, metering resource) -> unit-microseconds since the journal began.
UsageTotals = dict[tuple[str, str], int]
# The label of what the node's operator holds itself (metering's tenant ""): tenant
# names start with a letter or digit, so no tenant can be called this.
NODE_TENANT_LABEL = "_node"
USAGE_HELP = (
    "Usage since the journal began, in unit-seconds per tenant and resource: "
    "vcpu in vCPU-seconds, memory, disk and hugepages in GiB-seconds (profile: the "
    "hugepage size), gpu in GPU-seconds, mig in slice-seconds (profile: the MIG "
    "profile), vnet in VNet-seconds; tenant _node is the node's own"
)


def usage_labels(resource: str) -> tuple[str, str, int]:
    """A metering resource as (resource, profile) labels and the divisor of its amounts
    (memory and hugepages are held in MiB and counted in GiB)."""
    if resource == "memory_mib":
        return "memory", "", 1024
    if resource == "disk_gib":
        return "disk", "", 1
    kind, _, profile = resource.partition(":")
    return kind, profile, 1024 if kind == "hugepages" else 1


class UsageCollector(Collector):
    """``towerbox_usage_seconds_total``, read at scrape time from metering's ledger,
    which folds only the journal entries written since the last read.

    A counter must never go down, and an open interval counted up to one scrape can
    close a little earlier (the entry that closes it took its time before the scrape
    and committed after): each series reports the most it has reported."""

    def __init__(self, totals: Callable[[], UsageTotals]) -> None:
        self._totals = totals
        self._lock = threading.Lock()
        self._reported: dict[tuple[str, str, str], float] = {}

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "towerbox_usage_seconds", USAGE_HELP, labels=("tenant", "resource", "profile")
        )
        seconds: dict[tuple[str, str, str], float] = {}
        for (tenant, resource), unit_us in self._totals().items():
            name, profile, divisor = usage_labels(resource)
            key = (tenant or NODE_TENANT_LABEL, name, profile)
            seconds[key] = seconds.get(key, 0.0) + unit_us / divisor / 1_000_000
        with self._lock:
            for key, value in seconds.items():
                self._reported[key] = max(value, self._reported.get(key, 0.0))
            reported = dict(self._reported)
        for key, value in sorted(reported.items()):
            family.add_metric(list(key), value)
        yield family

    def describe(self) -> Iterator[Metric]:
        # Describing without reading the journal: registering must not fold it.
        yield CounterMetricFamily(
            "towerbox_usage_seconds", USAGE_HELP, labels=("tenant", "resource", "profile")
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.vms = Gauge(
            "towerbox_vms",
            "Domains on the node by state (from the last sweep)",
            ["state"],
            registry=self.registry,
        )
        self.sweep_seconds = Histogram(
            "towerbox_monitor_sweep_seconds",
            "Duration of a monitor sweep",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.api_seconds = Histogram(
            "towerbox_api_request_seconds",
            "API request latency",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.reconcile_restarts = Gauge(
            "towerbox_reconcile_restarts",
            "VMs restarted by the last reconcile run",
            registry=self.registry,
        )
        self.drift = Gauge(
            "towerbox_drift",
            "Drift items found by the last reconcile run",
            registry=self.registry,
        )

    def count_usage(self, totals: Callable[[], UsageTotals]) -> None:
        """Serve ``towerbox_usage_seconds_total`` from metering's running totals."""
        self.registry.register(UsageCollector(totals))

    def observe_sweep(self, seconds: float, states: dict[str, int]) -> None:
        self.sweep_seconds.observe(seconds)
        for state in DomainState:
            self.vms.labels(state=state.value).set(states.get(state.value, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
