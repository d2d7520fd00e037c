"""Health probes of service replicas: a serial-console marker, a TCP port or the
QEMU guest agent.

Each probe really looks at something outside the VM's power state: the console log
QEMU writes for the VM (the file the console route tails), a TCP connection to the
VM's address, or a ``guest-ping`` through the VM's guest-agent channel. A backend
that cannot run agent commands (the libvirt test driver) has the agent kind refused
before anything is made (see ``service_templates.check_on_node``).

The VM's address comes from libvirt (DHCP leases, then the host's ARP table); a
test or a node with its own address plan replaces ``address_of``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.backends.vm.protocol import DomainState, VmBackend
from appliance.config import Config
from appliance.services.vm_provision import console_path
from towerbox_core.api.services import HealthCheck
from towerbox_core.errors import TowerboxError

# A console log is scanned up to this size; a marker is printed at boot, early on.
_MAX_CONSOLE_BYTES = 16 << 20
# A probe a view makes (GET) waits at most this long for a TCP answer (a guest
# agent gets a whole second: libvirt counts in seconds).
QUICK_TCP_S = 0.5
_POLL_S = 0.2


@dataclass(frozen=True)
class Probe:
    healthy: bool
    detail: str
    state: str = "unknown"  # the domain's state as libvirt said it, or "missing"


def describe(health: HealthCheck | None) -> str:
    if health is None:
        return "running (no health check: the domain's state only)"
    if health.kind == "serial":
        return f"serial console shows {health.marker!r}"
    if health.kind == "tcp":
        return f"TCP port {health.port} answers"
    return "guest agent answers a ping"


class HealthProber:
    def __init__(self, cfg: Config, backend: VmBackend) -> None:
        self._cfg = cfg
        self._backend = backend
        self.address_of: Callable[[str], str | None] = self._libvirt_address

    def _libvirt_address(self, vm_id: str) -> str | None:
        found = self._backend.addresses(vm_id)
        return found[0] if found else None

    def probe(self, vm_id: str, health: HealthCheck | None, timeout_s: float) -> Probe:
        """One look at one replica: its domain runs and its check passes."""
        try:
            status = self._backend.status(vm_id)
        except TowerboxError as err:
            return Probe(False, f"libvirt: {err.message}")
        if status is None:
            return Probe(False, "no libvirt domain", "missing")
        state = status.state.value
        if status.state is not DomainState.RUNNING:
            return Probe(False, f"domain is {state}", state)
        if health is None:
            return Probe(True, "running", state)
        if health.kind == "serial":
            found = self._serial(vm_id, health.marker or "")
        elif health.kind == "tcp":
            found = self._tcp(vm_id, health.port or 0, timeout_s)
        else:
            found = self._agent(vm_id, timeout_s)
        return Probe(found.healthy, found.detail, state)

    def _serial(self, vm_id: str, marker: str) -> Probe:
        path: Path = console_path(self._cfg, vm_id)
        try:
            with path.open("rb") as f:
                seen = f.read(_MAX_CONSOLE_BYTES)
        except FileNotFoundError:
            return Probe(False, "no serial console output yet")
        except OSError as err:
            return Probe(False, f"serial console log unreadable: {err.strerror}")
        if marker.encode() in seen:
            return Probe(True, f"serial console shows {marker!r}")
        return Probe(False, f"{marker!r} not on the serial console yet")

    def _tcp(self, vm_id: str, port: int, timeout_s: float) -> Probe:
        try:
            address = self.address_of(vm_id)
        except TowerboxError as err:
            return Probe(False, f"address unknown: {err.message}")
        if address is None:
            return Probe(False, "no address known for the VM (no DHCP lease or ARP entry)")
        try:
            with socket.create_connection((address, port), timeout=timeout_s):
                return Probe(True, f"{address}:{port} accepts connections")
        except OSError as err:
            return Probe(False, f"{address}:{port}: {err.strerror or err}")

    def _agent(self, vm_id: str, timeout_s: float) -> Probe:
        try:
            self._backend.ping_guest_agent(vm_id, timeout_s)
        except TowerboxError as err:
            return Probe(False, f"guest agent: {err.message}")
        return Probe(True, "guest agent answers a ping")

    def wait_healthy(
        self,
        vm_id: str,
        health: HealthCheck | None,
        stop: Callable[[], bool] = lambda: False,
    ) -> Probe:
        """Probe until the check passes or its ``timeout_s`` runs out."""
        timeout = health.timeout_s if health else 30.0
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            result = self.probe(vm_id, health, max(0.05, min(2.0, left)))
            if result.healthy:
                return result
            if stop():  # the operation was asked to stop: no verdict on the replica
                return Probe(False, f"not waited for further: {result.detail}")
            if left <= 0:
                return Probe(False, f"not healthy after {timeout:g} s: {result.detail}")
            time.sleep(min(_POLL_S, max(0.0, left)))
