"""Prometheus metrics of the appliance, on a registry of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance import metrics_text
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


MEASURED_HELP = (
    "What the hardware counted for a tenant since the journal began, in 5-minute "
    "windows: n6_bytes and n6_packets on its VNets' N6 interfaces, cpu_seconds of its "
    "VMs, gpu_energy_joules and gpu_busy_seconds of the GPUs and MIG slices it holds; "
    "tenant _node is the node's own"
)
# Measured metering resources: their label and the count one unit of it is.
MEASURED_UNITS = {
    "n6_bytes": ("n6_bytes", 1),
    "n6_packets": ("n6_packets", 1),
    "cpu_ns": ("cpu_seconds", 1_000_000_000),
    "gpu_energy_mj": ("gpu_energy_joules", 1_000),
    "gpu_busy_us": ("gpu_busy_seconds", 1_000_000),
}


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
        self._reported: dict[tuple[str, str, str, str], float] = {}

    def collect(self) -> Iterator[Metric]:
        # (family, tenant, resource, profile) -> value; measured series have no profile.
        values: dict[tuple[str, str, str, str], float] = {}
        for (tenant, resource), unit_us in self._totals().items():
            who = tenant or NODE_TENANT_LABEL
            if resource in MEASURED_UNITS:
                name, per_unit = MEASURED_UNITS[resource]
                key = ("towerbox_usage_measured", who, name, "")
                values[key] = values.get(key, 0.0) + unit_us / per_unit
            else:
                name, profile, divisor = usage_labels(resource)
                key = ("towerbox_usage_seconds", who, name, profile)
                values[key] = values.get(key, 0.0) + unit_us / divisor / 1_000_000
        with self._lock:
            for key, value in values.items():
                self._reported[key] = max(value, self._reported.get(key, 0.0))
            reported = dict(self._reported)
        held, measured = self._families()
        for (family, tenant, name, profile), value in sorted(reported.items()):
            if family == "towerbox_usage_measured":
                measured.add_metric([tenant, name], value)
            else:
                held.add_metric([tenant, name, profile], value)
        yield held
        yield measured

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily]:
        return (
            CounterMetricFamily(
                "towerbox_usage_seconds", USAGE_HELP, labels=("tenant", "resource", "profile")
            ),
            CounterMetricFamily(
                "towerbox_usage_measured", MEASURED_HELP, labels=("tenant", "resource")
            ),
        )

    def describe(self) -> Iterator[Metric]:
        # Describing without reading the journal: registering must not fold it.
        yield from self._families()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.vms = Gauge(
            "towerbox_vms",
            "The node's VMs by state (from the last sweep; missing: no libvirt domain)",
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
        """``states``: the node's own VMs by state (``missing``: no domain)."""
        self.sweep_seconds.observe(seconds)
        for state in [*(s.value for s in DomainState), "missing"]:
            self.vms.labels(state=state).set(states.get(state, 0))

    def render(self) -> bytes:
        return metrics_text.render(self.registry)
