"""What service tests and the rollout benchmark need on the libvirt test driver.

The test driver has no guest: nothing listens in a VM and nothing writes its serial
console. A service's health checks still probe for real: TCP checks connect to a
listener on loopback (``Listener``; the prober's ``address_of`` points replicas at
it, or at 127.0.0.2 where nothing listens), and serial checks read the console log
file that ``ConsoleWriter`` writes for each new VM, as a booting guest would.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance.context import Appliance
from appliance.services.vm_provision import console_path
from appliance.store.models import Service, ServiceVm, Vm
from tests.support.tenancy import tenant_node

DEAD_ADDRESS = "127.0.0.2"  # loopback, but the listener is bound to 127.0.0.1 only


class Listener:
    """A TCP server on 127.0.0.1 that accepts and closes every connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@contextmanager
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def point_replicas(app: Appliance, bad: Callable[[str], bool] = lambda _vm: False) -> None:
    """TCP checks of replica ``vm_id`` reach the listener, or a dead address if ``bad``."""
    app.services.prober.address_of = lambda vm_id: DEAD_ADDRESS if bad(vm_id) else "127.0.0.1"


def booting(seconds: float) -> Callable[[str], bool]:
    """For ``point_replicas``: a VM answers only ``seconds`` after it was first probed,
    as a guest that boots would; the VMs there are now have booted."""
    first: dict[str, float] = dict.fromkeys((vm.id for vm in Vm.select(Vm.id)), 0.0)

    def young(vm_id: str) -> bool:
        return time.monotonic() - first.setdefault(vm_id, time.monotonic()) < seconds

    return young


def generation_of(vm_id: str) -> int:
    row = ServiceVm.get_or_none(ServiceVm.vm == vm_id)
    return int(row.generation) if row else 0


@contextmanager
def console_writer(
    app: Appliance, marker: str, match: str, delay_s: float = 0.2
) -> Iterator[dict[str, float]]:
    """Write ``marker`` to the console log of each VM whose name holds ``match``,
    ``delay_s`` after it appears; yields {VM name: when it was written}."""
    written: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            for vm in Vm.select(Vm.id, Vm.name):
                if match not in vm.name or vm.name in written:
                    continue
                first = seen.setdefault(vm.name, time.monotonic())
                if time.monotonic() - first >= delay_s:
                    path = console_path(app.cfg, vm.id)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(f"booting\n{marker}\n")
                    written[vm.name] = time.time()
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield written
    finally:
        stop.set()
        thread.join()


def wait_state(app: Appliance, name: str, timeout_s: float = 60.0) -> Any:
    """Wait for the service's running operation to end; its row's state after."""
    assert app.services.runner.wait_idle(timeout_s), "service operation did not end"
    row = Service.get_or_none(Service.name == name)
    return None if row is None else row.state


def made(name: str, timeout_s: float = 30.0) -> Vm:
    """The VM row of ``name`` once a service operation under way has made it."""
    deadline = time.monotonic() + timeout_s
    while (vm := Vm.get_or_none(Vm.name == name)) is None:
        assert time.monotonic() < deadline, f"{name} was never made"
        time.sleep(0.05)
    return vm


def take_memory(app: Appliance, client: Any, admin: dict[str, str], leave_mib: int) -> None:
    """Make a VM ("hog") that leaves VMs only ``leave_mib`` of the host's memory: what
    another operator's create does between a service's admission and its replicas."""
    admission = app.vms._admission
    assert admission is not None
    room = admission.memory_budget_mib - admission.committed_memory_mib()
    hog = {
        "name": "hog",
        "appliance": "demo",
        "spec": {"role": "b2b", "memory_mib": room - leave_mib},
    }
    resp = client.post("/api/v1/vms", headers=admin, json=hog)
    assert resp.status_code == 201, resp.text


def service_node(tmp_path: Path, **env: str) -> Iterator[Appliance]:
    """A tenant node (``tenant_node``) whose service operations have ended before it
    is torn down: a fixture's body, ``yield from service_node(tmp_path)``."""
    node = tenant_node(tmp_path, **env)
    app = next(node)
    yield app
    app.services.runner.wait_idle(60)
    for _ in node:
        pass
