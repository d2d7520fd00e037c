"""A whole node rebooted with the WAN down, on real libvirtd + QEMU and Open vSwitch.

The lab (set up by reboot_lab.py) is a node (appliance, agent enrolled with a registry
on loopback, UI),
gives it a committed MIG layout (simulated GPU), a tenant VNet on an OVS trunk with
the userspace datapath, and three demo VMs: the vRAN DU, a B2B VM with a NIC on the
VNet, and a B2B VM marked autostart that was never started. ``reboot`` then does to
the host what a power cycle does, and starts the processes again with the registry's
port closed; ``restored`` waits for each part to come back and times it.

What the simulated reboot clears, and how:
- every Towerbox process is stopped (SIGTERM, as systemd does at shutdown);
- the VMs' domains are destroyed (power loss); their definitions stay, as on disk;
- the OVS trunk bridge is deleted with its ports (userspace-datapath bridges are
  in ovsdb, but the VM ports and internal ports die with the host);
- the runtime folder (the ``/run`` of the node: API socket, agent relay, UI
  sessions) is emptied;
- the simulated GPUs are power-cycled (sim_state.power_cycle);
- the boot id changes (the node's procfs here is the real one's meminfo and
  cpuinfo, with a boot id the lab owns).
- libvirtd (with virtlogd) and Open vSwitch are stopped and started again, as the
  host's boot does, and must answer before the appliance starts, as its unit's
  ordering makes sure on a node. The host's other bridges come back from ovsdb.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import libvirt

from appliance.backends.gpu.sim_state import power_cycle
from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from appliance.config import Config
from appliance.domain.gpu.catalog import default_catalog
from appliance.services.uptime import BOOT_ID
from tests.integration.sync.fleet import AgentProcess, stop_process
from tests.support.appliance import REPO
from tests.support.daemon import TOWERBOX, Daemon, free_port
from tests.support.n6host import OVS_CTL
from tests.support.registry_process import operator_headers
from towerbox_core import subp

# The vRAN slice and two B2B slices on the simulated H100.
LAYOUT = {
    "instances": [
        {"profile": "3g.40gb", "start": 4, "role": "vran", "owner": "process:du-l1"},
        {"profile": "2g.20gb", "start": 0},
        {"profile": "2g.20gb", "start": 2},
    ]
}
VRAN = "du"
B2B = ("cam", "llm")  # within a role, VMs start in name order
VLAN = 321
# What the API shows once the layout is back: (profile, start, role, owner), slot order.
EXPECTED_LAYOUT = [
    ("2g.20gb", 0, "b2b", None),
    ("2g.20gb", 2, "b2b", None),
    ("3g.40gb", 4, "vran", "process:du-l1"),
]


@dataclass
class Timings:
    vran_running_s: float = 0.0
    all_restored_s: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)  # seconds from start, per part


@dataclass
class RebootLab:
    cfg: Config
    work: Path
    daemon: Daemon
    tag: str  # names this run's bridge and VMs
    owner: str  # the N6 owner marker of this run
    registry_env: dict[str, str]
    registry_url: str
    agent: AgentProcess
    ids: dict[str, str] = field(default_factory=dict)
    ui: subprocess.Popen[bytes] | None = None
    ui_port: int = field(default_factory=free_port)
    registry: subprocess.Popen[bytes] | None = None
    registry_starts: int = 0

    @property
    def bridge(self) -> str:
        return f"rb{self.tag}"

    @property
    def run_dir(self) -> Path:
        return self.work / "run"

    @property
    def boot_id(self) -> Path:
        return Path(self.cfg.host.procfs_root) / BOOT_ID

    def vm(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def api(self) -> httpx.Client:
        return self.daemon.http(self.cfg.cli_token_file.read_text().strip())

    # -- the processes -------------------------------------------------------------

    def start_registry(self) -> None:
        self.registry_starts += 1
        log = (self.work / f"registry-{self.registry_starts}.log").open("wb")
        self.registry = subprocess.Popen(
            [TOWERBOX, "registry", "serve"], env=self.registry_env, stdout=log, stderr=log
        )
        log.close()
        _wait(lambda: _answers(f"{self.registry_url}/healthz"), 60, "the registry")

    def stop_registry(self) -> None:
        if self.registry is not None:
            stop_process(self.registry)

    def start_ui(self) -> None:
        (self.run_dir / "ui").mkdir(parents=True, exist_ok=True)
        # Not PYTEST_ either: NiceGUI takes PYTEST_CURRENT_TEST for its own test mode.
        prefixes = ("TOWERBOX_", "NICEGUI_", "PYTEST_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        log = (self.work / "ui.log").open("ab")
        self.ui = subprocess.Popen(
            [
                TOWERBOX,
                "ui",
                "--appliance-url",
                self.daemon.url,
                "--port",
                str(self.ui_port),
                "--storage-dir",
                str(self.run_dir / "ui"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def ui_answers(self) -> bool:
        return _answers(f"http://127.0.0.1:{self.ui_port}/login")

    def stop_all(self) -> None:
        """Every Towerbox process, as systemd stops them at shutdown."""
        self.agent.stop()
        if self.ui is not None:
            stop_process(self.ui)
        stop_process(self.daemon.proc)

    # -- the node's content ------------------------------------------------------------

    def populate(self) -> None:
        with self.api() as api:
            gpu = api.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
            _ok(api.post(f"/api/v1/gpus/{gpu}/apply", json=LAYOUT))
            _ok(api.post("/api/v1/tenants", json={"name": "acme"}))
            trunk = {"kind": "ovs", "datapath_type": "netdev"}
            _ok(api.put(f"/api/v1/n6/trunks/{self.bridge}", json=trunk))
            octet = 100 + int(self.tag) % 100
            vnet = {
                "tenant": "acme",
                "name": "llm",
                "trunk": self.bridge,
                "vlan": VLAN,
                "subnet": f"10.{octet}.50.0/24",
                "gateway": f"10.{octet}.50.1",
                "ue_pools": [f"10.{octet}.60.0/24"],
            }
            _ok(api.post("/api/v1/n6/vnets", json=vnet))
            _ok(api.post("/api/v1/n6/apply"))
            specs: dict[str, tuple[dict[str, Any], bool]] = {
                VRAN: ({"role": "vran"}, True),
                "llm": ({"role": "b2b", "nics": [{"kind": "vnet", "vnet": "acme/llm"}]}, True),
                "cam": ({"role": "b2b", "autostart": True}, False),
            }
            for name, (spec, start) in specs.items():
                body = {"name": self.vm(name), "appliance": "demo", "spec": spec, "start": start}
                self.ids[name] = _ok(api.post("/api/v1/vms", json=body))["id"]

    def layout(self) -> list[tuple[str, int, str, str | None]]:
        with self.api() as api:
            gpu = api.get("/api/v1/gpus").json()["gpus"][0]
        return [
            (i["profile"], i["start"], i["role"], i["owner"]) for i in gpu["layout"]["instances"]
        ]

    def running(self) -> set[str]:
        conn = libvirt.open(SYSTEM_URI)
        try:
            return {n for n, i in self.ids.items() if conn.lookupByUUIDString(i).isActive()}
        finally:
            conn.close()

    def n6_ports(self) -> dict[str, str]:
        """The trunk bridge's ports and their tags; empty when there is no bridge."""
        if subp.run(["ovs-vsctl", "br-exists", self.bridge], timeout=30, check=False).returncode:
            return {}
        ports = subp.run(["ovs-vsctl", "list-ports", self.bridge], timeout=30).stdout.split()
        return {
            p: subp.run(["ovs-vsctl", "get", "Port", p, "tag"], timeout=30).stdout.strip()
            for p in ports
        }

    def journal(self, after: int = 0) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        with self.api() as api:
            while True:
                page = api.get("/api/v1/journal", params={"after": after, "limit": 1000})
                got = page.json()["entries"]
                if not got:
                    return entries
                entries += got
                after = got[-1]["seq"]

    def sync_status(self) -> dict[str, Any]:
        with self.api() as api:
            status: dict[str, Any] = api.get("/api/v1/sync/status").json()
        return status

    def summaries(self, site: str) -> tuple[dict[str, Any], dict[str, Any]]:
        with self.api() as api:
            node = api.get("/api/v1/journal/summary").json()
        held = httpx.get(
            f"{self.registry_url}/api/v1/sites/{site}/journal/summary",
            headers=operator_headers(self.registry_env),
            timeout=30,
        ).json()
        return node, held

    # -- the reboot --------------------------------------------------------------------

    def reboot(self) -> None:
        """Power-cycle the node with the WAN down: stop, clear, nothing restarted yet."""
        self.stop_all()
        self.stop_registry()  # the WAN is down: the registry's port is closed
        conn = libvirt.open(SYSTEM_URI)
        try:
            for vm_id in self.ids.values():
                dom = conn.lookupByUUIDString(vm_id)
                if dom.isActive():
                    dom.destroy()
        finally:
            conn.close()
        subp.run(["ovs-vsctl", "--if-exists", "del-br", self.bridge], timeout=30)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        power_cycle(Path(self.cfg.state_dir) / "gpu-simulator.json", default_catalog())
        self.boot_id.write_text(f"boot-after-{time.time_ns()}\n")
        services_down()
        services_up()

    def boot(self) -> Timings:
        """Start the appliance, agent and UI as the node's units would, and time the
        node's return: the vRAN running, then everything."""
        timings = Timings()
        began = time.monotonic()
        self.daemon.respawn()
        conn = libvirt.open(SYSTEM_URI)
        try:
            du = conn.lookupByUUIDString(self.ids[VRAN])
            _wait(lambda: du.isActive() == 1, 60, "the vRAN VM running")
            timings.vran_running_s = time.monotonic() - began
        finally:
            conn.close()
        self.daemon.wait_notify("READY=1")
        timings.steps["api_ready"] = time.monotonic() - began
        self.agent.start()
        self.start_ui()
        checks: dict[str, Callable[[], bool]] = {
            "layout": lambda: self.layout() == EXPECTED_LAYOUT,
            "vms": lambda: self.running() == {VRAN, *B2B},
            # The VNet's internal port and the B2B VM's NIC, both tagged.
            "n6": lambda: list(self.n6_ports().values()).count(str(VLAN)) >= 2,
            "ui": self.ui_answers,
        }
        pending = dict(checks)
        end = time.monotonic() + 120
        while pending and time.monotonic() < end:
            for name, check in list(pending.items()):
                if check():
                    timings.steps[name] = time.monotonic() - began
                    del pending[name]
            time.sleep(0.1)
        if pending:
            logs = {"ui": self.work / "ui.log", "appliance": self.daemon.log}
            tails = "\n".join(f"-- {n}:\n{p.read_text()[-2000:]}" for n, p in logs.items())
            raise AssertionError(f"not restored within 120 s: {', '.join(pending)}\n{tails}")
        timings.all_restored_s = time.monotonic() - began
        return timings

    # -- the end -------------------------------------------------------------------------

    def clean_through_api(self) -> list[str]:
        """Remove what the run made as an operator would; what the API refused."""
        refused = []
        with self.api() as api:
            calls = [("DELETE", f"/api/v1/vms/{self.vm(name)}") for name in self.ids]
            calls += [
                ("DELETE", "/api/v1/n6/vnets/acme/llm"),
                ("DELETE", f"/api/v1/n6/trunks/{self.bridge}"),
                ("POST", "/api/v1/n6/apply"),
            ]
            for method, url in calls:
                try:
                    resp = api.request(method, url)
                except httpx.HTTPError as err:
                    refused.append(f"{method} {url}: {err}")
                    continue
                if resp.status_code >= 300 and resp.status_code != 404:
                    refused.append(f"{method} {url}: {resp.status_code} {resp.text[:200]}")
        return refused

    def remove_leftovers(self) -> None:
        """With the appliance stopped (its reconcile would re-create the trunk): the
        domains and the bridge, whatever the API did not remove."""
        conn = libvirt.open(SYSTEM_URI)
        try:
            for vm_id in self.ids.values():
                with contextlib.suppress(libvirt.libvirtError):
                    dom = conn.lookupByUUIDString(vm_id)
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
        finally:
            conn.close()
        subp.run(["ovs-vsctl", "--if-exists", "del-br", self.bridge], timeout=30, check=False)


def services_down() -> None:
    """Stop libvirtd, virtlogd and Open vSwitch, as a host going down does."""
    if _pid1_is_systemd():
        subp.run(["systemctl", "stop", "libvirtd.service", "virtlogd.service"], timeout=120)
    else:
        for name in ("libvirtd", "virtlogd"):
            subp.run(["pkill", "-TERM", "-x", name], timeout=10, check=False)
        _wait(lambda: not _running("libvirtd") and not _running("virtlogd"), 60, "libvirtd gone")
    subp.run([OVS_CTL, "stop"], timeout=120)


def _pid1_is_systemd() -> bool:
    return Path("/proc/1/comm").read_text().strip() == "systemd"


def _running(name: str) -> bool:
    return subp.run(["pgrep", "-x", name], timeout=10, check=False).returncode == 0


def services_up() -> None:
    """libvirtd and Open vSwitch answer, started if they were stopped: the services the
    appliance's unit is ordered after."""
    subp.run([str(REPO / "scripts" / "start-libvirtd.sh")], timeout=120)
    if subp.run(["ovs-vsctl", "--timeout=5", "show"], timeout=10, check=False).returncode:
        subp.run([OVS_CTL, "start", "--system-id=random"], timeout=120)
    libvirt.open(SYSTEM_URI).close()
    subp.run(["ovs-vsctl", "--timeout=5", "show"], timeout=10)


def seen_running(entries: list[dict[str, Any]], vm_id: str) -> int:
    """The seq of the first journal entry that saw the VM running."""
    return next(
        e["seq"]
        for e in entries
        if e["kind"] == "vm.state" and e["object_id"] == vm_id and e["state"]["state"] == "running"
    )


def _ok(resp: httpx.Response) -> Any:
    assert resp.status_code < 300, f"{resp.request.method} {resp.request.url}: {resp.text}"
    return resp.json() if resp.content else None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
