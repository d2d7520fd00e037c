"""Prometheus metrics of the appliance, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from appliance.backends.vm.protocol import DomainState


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

    def observe_sweep(self, seconds: float, states: dict[str, int]) -> None:
        self.sweep_seconds.observe(seconds)
        for state in DomainState:
            self.vms.labels(state=state.value).set(states.get(state.value, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
