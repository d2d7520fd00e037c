"""Crash runs: an operation in a real daemon process, the daemon killed while it runs
(at a named fault point, or from outside after a random delay), restarted on its
state, and the node checked for what a crash must never leave.

A run starts from a copy of a template state folder (one daemon start made it), so a
run costs two daemon starts and the operation. The seed of every run is in its
result and in every failure message: ``TOWERBOX_CRASH_SEED`` replays one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from appliance.backends.vm.libvirt_backend import LibvirtBackend
from appliance.config import Config
from appliance.services.gpu_binding import mdev_uuid_for
from appliance.services.vm_intents import UNDONE
from tests.support.appliance import make_config
from tests.support.daemon import START_WITHIN_S, Daemon, running_daemon
from towerbox_core.errors import TowerboxError
from towerbox_core.faults import ENV as FAULT_ENV

# Simulated GPUs with vGPUs, simulated N6: what the suite's daemon runs on.
SIMULATED = {"TOWERBOX_GPU_BACKEND": "simulated", "TOWERBOX_N6_BACKEND": "simulated"}
# A reconcile pass every second: a run waits for one after the operator's finish.
FAST_JOBS = {"TOWERBOX_JOBS_RECONCILE_INTERVAL_S": "1"}
# The operations take some 50-300 ms here: a kill from outside after a delay drawn
# from this range lands before, in or after the request.
KILL_WITHIN_S = 0.3


def crash_seed() -> int:
    return int(os.environ.get("TOWERBOX_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))


class Node:
    """One daemon on a run's state folder, seen through its API and its state files."""

    def __init__(self, daemon: Daemon, cfg: Config) -> None:
        self.daemon = daemon
        self.cfg = cfg
        self.token = cfg.cli_token_file.read_text().strip()

    def client(self) -> httpx.Client:
        return self.daemon.http(self.token)

    def ok(self, resp: httpx.Response, *status: int) -> Any:
        assert resp.status_code in (status or (200,)), f"{resp.request.url}: {resp.text}"
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        with self.client() as c:
            return self.ok(c.get(path, params=params))

    def db(self) -> sqlite3.Connection:
        # Read-only, beside the daemon: WAL lets it read while the daemon writes.
        return sqlite3.connect(f"file:{self.cfg.db_path}?mode=ro", uri=True, timeout=30)


@dataclass(frozen=True)
class Operation:
    """What a run does. ``prepare`` once, on a daemon of its own whose state every run
    of the operation then starts from; ``setup`` on the daemon that will die (the
    libvirt test driver's domains live in its process), never on the path of the
    operation's fault points; ``act`` the request the kill cuts; ``finish`` what an
    operator does afterwards to get what ``act`` wanted."""

    name: str
    points: tuple[str, ...]
    act: Callable[[Node], object]
    finish: Callable[[Node], object]
    setup: Callable[[Node], object] = lambda node: None
    prepare: Callable[[Node], object] | None = None
    env: dict[str, str] = field(default_factory=dict)
    # What the operation owns, checked on the restarted node and after the finish.
    check: Callable[[Node], list[str]] = lambda node: []
    # What ``act`` asked for, checked after the finish.
    done: Callable[[Node], list[str]] = lambda node: []


@dataclass
class RunResult:
    op: str
    seed: int
    kill: str  # "fault vm.create.after_define" or "after 0.031 s"
    outcome: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return not self.problems

    def line(self) -> str:
        status = "ok" if self.converged else "FAILED: " + "; ".join(self.problems)
        return f"seed {self.seed} {self.op} killed {self.kill} ({self.outcome}): {status}"


class Harness:
    """Makes the template once, then runs operations killed at chosen points."""

    def __init__(self, work: Path, env: dict[str, str] | None = None) -> None:
        self.work = work
        self.env = {**SIMULATED, **FAST_JOBS, **(env or {})}
        self.template = work / "template"
        self._runs = itertools.count(1)
        self._prepared: dict[str, Path] = {}

    def _config(self, folder: Path, extra: dict[str, str]) -> Config:
        return make_config(folder, **self.env, **extra)

    def make_template(self) -> None:
        """One daemon start and clean stop: the database, the accounts and the GPU
        simulator's file exist, and every run copies them."""
        if self.template.exists():
            return
        self.template.mkdir(parents=True)
        cfg = self._config(self.template, {})
        with running_daemon(cfg, self.template, 0, self.env) as daemon:
            daemon.wait_notify("READY=1", START_WITHIN_S)

    def _template_of(self, op: Operation) -> Path:
        """The state the operation's runs start from: the template, prepared."""
        self.make_template()
        if op.prepare is None:
            return self.template
        # Folders are numbered, not named after the operation: the daemon's unix socket
        # lies below them, and a socket path holds at most 107 bytes.
        folder = self._prepared.setdefault(op.name, self.work / f"prep-{len(self._prepared)}")
        if not folder.exists():
            self._copy(self.template, folder)
            with self._node(folder, op, None) as node:
                op.prepare(node)
        return folder

    def _copy(self, template: Path, folder: Path) -> None:
        # The host fixture tree is only read: shared. The rest is the run's own.
        skip = shutil.ignore_patterns("host", "*.sock", "daemon.log", "run")
        shutil.copytree(template, folder, symlinks=True, ignore=skip)
        (folder / "host").symlink_to(self.template / "host")

    @contextmanager
    def _node(self, folder: Path, op: Operation, fault: str | None) -> Iterator[Node]:
        """A daemon on ``folder``; with ``fault`` armed it may die while it starts (the
        boot-time N6 re-apply passes the N6 apply's points), and is then yielded dead."""
        cfg = self._config(folder, op.env)
        extra = {**self.env, **op.env, **({FAULT_ENV: fault} if fault else {})}
        with running_daemon(cfg, folder, 0, extra) as daemon:
            try:
                daemon.wait_notify("READY=1", START_WITHIN_S)
            except AssertionError:
                if fault is None or daemon.proc.poll() != -signal.SIGKILL:
                    raise
            yield Node(daemon, cfg)

    def _remove_domains(self) -> None:
        """On a real libvirtd, the run's domains outlive its daemon: remove them."""
        backend = real_backend(self.env)
        if backend is None:
            return
        node = self.env["TOWERBOX_NODE_NAME"]
        for dom in backend.list_domains():
            if dom.owner_node == node:
                with contextlib.suppress(TowerboxError):  # already off
                    backend.destroy(dom.uuid)
                backend.undefine(dom.uuid)

    def run(self, op: Operation, seed: int) -> RunResult:
        """A run whose kill is drawn from ``seed``: a fault point of the operation, or
        (one time in three) a kill from outside after a random delay."""
        rng = random.Random(seed)
        return self.run_at(op, rng.choice(op.points) if rng.random() < 0.67 else None, seed)

    def run_at(self, op: Operation, fault: str | None, seed: int) -> RunResult:
        """One run: killed at ``fault``, or after a delay drawn from ``seed`` when None;
        the restart, the checks, the operator's finish, the checks again."""
        delay = round(random.Random(seed).uniform(0, KILL_WITHIN_S), 3)
        result = RunResult(op.name, seed, f"at {fault}" if fault else f"after {delay} s")
        folder = self.work / f"run-{next(self._runs)}"
        try:
            self._copy(self._template_of(op), folder)
            with self._node(folder, op, fault) as node:
                if node.daemon.proc.poll() is None:
                    op.setup(node)
                    result.outcome = _kill_during(node, op, fault, delay)
                else:
                    result.outcome = "killed while it started"
                node.daemon.env.pop(FAULT_ENV, None)
                repairs = Repairs.needed(node)
                node.daemon.restart(START_WITHIN_S)
                result.problems += [f"after restart: {p}" for p in invariants(node)]
                result.problems += [f"after restart: {p}" for p in repairs.unsaid(node)]
                result.problems += [f"after restart: {p}" for p in op.check(node)]
                if not result.problems:
                    op.finish(node)
                    wait_reconciled(node)
                    result.problems += [f"after finish: {p}" for p in invariants(node)]
                    result.problems += [f"after finish: {p}" for p in settled(node)]
                    result.problems += [f"after finish: {p}" for p in op.check(node)]
                    result.problems += [f"after finish: {p}" for p in op.done(node)]
                if result.problems:
                    result.problems.append("log: " + node.daemon.log.read_text()[-1500:])
        except Exception as err:  # a run that cannot even finish is a failed run
            # The head says what failed, the tail (a daemon's log) why: keep both.
            text = str(err)
            if len(text) > 2400:
                text = f"{text[:600]} [...] {text[-1800:]}"
            result.problems.append(f"{type(err).__name__}: {text}")
        finally:
            self._remove_domains()
        if result.converged:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            result.problems.append(f"state kept in {folder}")
        return result


def _kill_during(node: Node, op: Operation, fault: str | None, delay: float) -> str:
    outcome: list[str] = []

    def go() -> None:
        try:
            op.act(node)
            outcome.append("the request finished")
        except Exception as err:  # the kill cuts it: recorded, the checks decide
            outcome.append(f"the request was cut ({type(err).__name__})")

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    if fault is None:
        time.sleep(delay)
        node.daemon.kill()
    else:
        worker.join(timeout=60)
        try:
            node.daemon.proc.wait(timeout=2)
        except Exception:
            node.daemon.kill()
            outcome.append(f"fault point {fault} never reached")
    node.daemon.kill()
    worker.join(timeout=60)
    return "; ".join(outcome) or "hung"


def wait_reconciled(node: Node) -> None:
    """Until a reconcile pass began after now and the monitor swept once more."""
    time.sleep(float(node.daemon.env["TOWERBOX_JOBS_RECONCILE_INTERVAL_S"]) + 0.3)


# -- invariants --------------------------------------------------------------------


def invariants(node: Node) -> list[str]:
    """What no crash may leave, on any operation: problems found (empty: none)."""
    problems: list[str] = []
    with node.db() as db:
        (integrity,) = db.execute("PRAGMA integrity_check").fetchone()
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity}")
        problems += _journal_gaps(db)
        rows = dict(db.execute("SELECT id, name FROM vm"))
        problems += _journal_matches_rows(db, rows)
        problems += _gpu_matches_committed(node, db, rows)
        query = "SELECT object_id FROM journal WHERE kind = 'drift.domain_missing'"
        drift = {vm_id for (vm_id,) in db.execute(query)}
        problems += _allocations_match_rows(node, db)
    problems += _vgpus_match_claims(node, rows)
    problems += _no_orphan_files(node, rows)
    problems += _api_matches_rows(node, rows, drift)
    problems += _domains_match_rows(node, rows)
    return problems


def _journal_gaps(db: sqlite3.Connection) -> list[str]:
    meta = dict(db.execute("SELECT key, value FROM meta"))
    head = int(meta["journal_next_seq"]) - 1
    compacted = int(meta.get("journal_compacted_through", 0))
    seqs = [
        s for (s,) in db.execute("SELECT seq FROM journal WHERE seq > ? ORDER BY seq", (compacted,))
    ]
    if seqs != list(range(compacted + 1, head + 1)):
        missing = sorted(set(range(compacted + 1, head + 1)) - set(seqs))
        return [f"journal has gaps above {compacted}: missing {missing[:10]}, head {head}"]
    return []


def _journal_matches_rows(db: sqlite3.Connection, rows: dict[str, str]) -> list[str]:
    """A VM row exists exactly for the VMs whose journal says created and not deleted."""
    last: dict[str, str] = {}
    query = "SELECT object_id, kind FROM journal WHERE object_type = 'vm' ORDER BY seq"
    for vm_id, kind in db.execute(query):
        if kind in ("vm.created", "vm.deleted"):
            last[vm_id] = kind
    alive = {vm_id for vm_id, kind in last.items() if kind == "vm.created"}
    problems = []
    if set(rows) - alive:
        problems.append(f"VM rows the journal never created: {sorted(set(rows) - alive)}")
    if alive - set(rows):
        problems.append(f"VMs the journal holds alive without a row: {sorted(alive - set(rows))}")
    return problems


def _no_orphan_files(node: Node, rows: dict[str, str]) -> list[str]:
    """Every overlay, seed and console file belongs to a VM row."""
    found = []
    for folder in (node.cfg.disk_dir, node.cfg.console_dir):
        if folder.is_dir():
            found += [p for p in folder.iterdir() if p.name[:36] not in rows]
    return [f"files of no VM: {sorted(p.name for p in found)}"] if found else []


def _api_matches_rows(node: Node, rows: dict[str, str], drift: set[str]) -> list[str]:
    """The API lists every VM row and no other; each one's state is what libvirt says
    (a row whose domain is gone shows ``missing`` and is journalled as drift)."""
    listed = {v["id"]: v for v in node.get("/api/v1/vms")}
    problems = []
    if set(listed) != set(rows):
        problems.append(f"API lists {sorted(listed)}, the database holds {sorted(rows)}")
    missing = [v["id"] for v in listed.values() if v["state"] == "missing"]
    unsaid = sorted(set(missing) - drift)
    if unsaid:
        problems.append(f"VMs without a domain the journal does not call drift: {unsaid}")
    return problems


def real_backend(env: dict[str, str]) -> LibvirtBackend | None:
    """The system libvirtd the runs' daemons use, or None on the test driver (whose
    domains live in the daemon's process and are seen through its API only)."""
    uri = env.get("TOWERBOX_LIBVIRT_URI", "test:///default")
    return None if uri.startswith("test:") else LibvirtBackend(uri, "qemu")


def _domains_match_rows(node: Node, rows: dict[str, str]) -> list[str]:
    """On a real libvirtd: every domain this node owns has a row (no orphan), and
    every row's domain is there or the API says ``missing`` (checked above)."""
    backend = real_backend(node.daemon.env)
    if backend is None:
        return []
    owned = {d.uuid: d.name for d in backend.list_domains() if d.owner_node == node.cfg.node_name}
    orphans = sorted(set(owned) - set(rows))
    return [f"libvirt domains with no VM row: {[owned[u] for u in orphans]}"] if orphans else []


def _gpu_state(node: Node) -> dict[str, Any] | None:
    """The simulated GPUs as their file holds them (None: not simulated)."""
    path = Path(node.cfg.state_dir) / "gpu-simulator.json"
    return json.loads(path.read_text()) if path.exists() else None


def _committed_layouts(db: sqlite3.Connection) -> dict[str, list[tuple[str, int]]]:
    return {
        uuid: sorted((i["profile"], i["start"]) for i in json.loads(layout)["instances"])
        for uuid, layout in db.execute("SELECT gpu_uuid, layout FROM gpu_layout")
    }


def _off_layout(state: dict[str, Any], db: sqlite3.Connection) -> dict[str, str]:
    """The simulated GPUs whose instances are not their committed layout's: a line
    saying how, by GPU UUID."""
    committed = _committed_layouts(db)
    lines = {}
    for gpu in state["gpus"]:
        have = sorted((i["profile"], i["start"]) for i in gpu["instances"])
        want = committed.get(gpu["uuid"])
        if want is not None and have != want:
            lines[gpu["uuid"]] = f"GPU {gpu['uuid']} holds {have}, its committed layout is {want}"
    return lines


def _gpu_matches_committed(node: Node, db: sqlite3.Connection, rows: dict[str, str]) -> list[str]:
    """The simulated GPUs hold exactly the committed layouts, and a slice's workload is
    a VM that exists or a process claim."""
    state = _gpu_state(node)
    if state is None:
        return []
    problems = list(_off_layout(state, db).values())
    claims = node.get("/api/v1/gpus/claims")
    for claim in claims:
        owner = claim["owner"]
        if not owner.startswith("process:") and owner not in rows.values():
            problems.append(f"GPU claim held by {owner}, which is no VM")
    return problems


def _vgpus_match_claims(node: Node, rows: dict[str, str]) -> list[str]:
    """No orphan vGPU: each vGPU on a simulated GPU instance is the one of a VM row
    (its UUID is derived from the VM's id, gpu_binding) whose claim is that instance;
    and a running VM on a MIG slice has its vGPU on the instance it claims."""
    state = _gpu_state(node)
    if state is None:
        return []
    vm_of = {mdev_uuid_for(vm_id): name for vm_id, name in rows.items()}
    claimed = {
        (c["gpu"], c["profile"], c["start"]): c["owner"] for c in node.get("/api/v1/gpus/claims")
    }
    problems = []
    placed: dict[str, tuple[str, str, int]] = {}  # VM -> the instance its vGPU is on
    for gpu in state["gpus"]:
        for inst in gpu["instances"]:
            workload = inst.get("workload") or ""
            if not workload.startswith("vgpu:"):
                continue
            mdev = workload.removeprefix("vgpu:")
            where = (gpu["uuid"], inst["profile"], inst["start"])
            label = f"{inst['profile']}@{inst['start']} of GPU {gpu['uuid']}"
            vm = vm_of.get(mdev)
            if vm is None:
                problems.append(f"vGPU {mdev} on {label} is no VM's (orphan)")
            elif claimed.get(where) != vm:
                owner = claimed.get(where) or "no one"
                problems.append(f"vGPU {mdev} of VM {vm} is on {label}, which {owner} claims")
            else:
                placed[vm] = where
    mig = {name for name, spec in _specs(node).items() if _on_mig(spec)}
    for vm in node.get("/api/v1/vms"):
        if vm["name"] in mig and vm["state"] == "running" and vm["name"] not in placed:
            problems.append(f"VM {vm['name']} runs on a MIG slice, with no vGPU on its claim")
    return problems


def _specs(node: Node) -> dict[str, dict[str, Any]]:
    with contextlib.closing(node.db()) as db:
        return {name: json.loads(spec) for name, spec in db.execute("SELECT name, spec FROM vm")}


def _on_mig(spec: dict[str, Any]) -> bool:
    gpu = spec.get("gpu")
    return isinstance(gpu, dict) and gpu.get("attach", "mig") == "mig"


# -- allocations -----------------------------------------------------------------------

PAGE_KIB = {"none": 0, "2M": 2048, "1G": 1048576}


@dataclass
class _RowHoldings:
    """What the VM rows' allocations hold, added up."""

    names: list[str] = field(default_factory=list)
    cpus: dict[int, str] = field(default_factory=dict)  # CPU -> VM
    pci: dict[str, str] = field(default_factory=dict)  # PCI address -> VM
    pages: Counter[tuple[int | None, int]] = field(default_factory=Counter)  # (node, KiB)
    problems: list[str] = field(default_factory=list)

    def add(self, name: str, alloc: dict[str, Any]) -> None:
        self.names.append(name)
        for cpu in alloc.get("cpus", []):
            if cpu in self.cpus:
                self.problems.append(f"CPU {cpu} is held by VMs {self.cpus[cpu]} and {name}")
            self.cpus[cpu] = name
        for address in (*alloc.get("pci_devices", []), *alloc.get("sriov_vfs", [])):
            if address in self.pci:
                self.problems.append(f"PCI {address} is held by VMs {self.pci[address]} and {name}")
            self.pci[address] = name
        if alloc.get("hugepages"):
            self.pages[alloc.get("numa_node"), alloc["hugepage_size_kib"]] += alloc["hugepages"]


def _allocations_match_rows(node: Node, db: sqlite3.Connection) -> list[str]:
    """The host resources the allocator holds (the host view's ``allocation``: VMs,
    pinned CPUs, hugepages and PCI devices by NUMA node) are the sum of the VM rows'
    allocations, none of which double-books a CPU or a device, and each of which is
    what its spec asks for."""
    host = node.get("/api/v1/host")
    node_of = {t["cpu"]: t["node"] for t in host["inventory"]["threads"]}
    rows = _RowHoldings()
    for name, spec, raw in db.execute("SELECT name, spec, allocation FROM vm ORDER BY name"):
        alloc = json.loads(raw)
        rows.problems += _allocation_fits_spec(name, json.loads(spec), alloc, node_of)
        rows.add(name, alloc)
    problems = rows.problems
    usage = host["allocation"]
    if sorted(usage["vms"]) != rows.names:
        problems.append(f"the allocator holds resources for {usage['vms']}, rows are {rows.names}")
    held_pci: dict[str, str] = dict(usage["pci_held_without_node"])
    pages = Counter(rows.pages)
    for numa in usage["nodes"]:
        where = f"NUMA node {numa['id']}"
        pinned = sum(1 for cpu in rows.cpus if node_of.get(cpu) == numa["id"])
        if numa["cpus"]["pinned"] != pinned:
            held = numa["cpus"]["pinned"]
            problems.append(f"{where}: the allocator holds {held} pinned CPUs, the rows {pinned}")
        for label, size in numa["hugepages"].items():
            want = pages.pop((numa["id"], size["size_kib"]), 0)
            if size["held"] != want:
                held = size["held"]
                problems.append(
                    f"{where}: the allocator holds {held} {label} pages, the rows {want}"
                )
        held_pci.update(numa["pci_held"])
    if +pages:
        problems.append(f"hugepages the rows hold and the allocator does not: {dict(+pages)}")
    if held_pci != rows.pci:
        problems.append(f"the allocator holds PCI devices {held_pci}, the rows {rows.pci}")
    return problems


def _allocation_fits_spec(
    name: str, spec: dict[str, Any], alloc: dict[str, Any], node_of: dict[int, int]
) -> list[str]:
    """A row's allocation is what its spec asks: pins for a pinned VM's vCPUs on its
    NUMA node, hugepages of its size for its memory, a VF per SR-IOV NIC."""
    problems = []
    pinned = spec.get("cpu", {}).get("policy") == "pinned"
    pins, cpus = alloc.get("vcpu_pins", []), alloc.get("cpus", [])
    if pinned and (len(pins) != spec["vcpus"] or not set(pins) <= set(cpus)):
        problems.append(f"VM {name} is pinned with {spec['vcpus']} vCPUs, holds pins {pins}")
    if pinned and {node_of.get(c) for c in cpus} != {alloc.get("numa_node")}:
        problems.append(f"VM {name} holds CPUs {cpus} off its NUMA node {alloc.get('numa_node')}")
    if not pinned and cpus:
        problems.append(f"VM {name} is not pinned, holds CPUs {cpus}")
    size = PAGE_KIB[spec.get("hugepages", "none")]
    count = alloc.get("hugepages", 0)
    held = alloc.get("hugepage_size_kib", 0) if count else 0
    if held != size or count * size < (spec["memory_mib"] * 1024 if size else 0):
        problems.append(
            f"VM {name} asks {spec.get('hugepages')} hugepages for {spec['memory_mib']} MiB, "
            f"holds {count} of {alloc.get('hugepage_size_kib')} KiB"
        )
    sriov = sum(1 for nic in spec.get("nics", []) if nic.get("kind") == "sriov")
    if len(alloc.get("sriov_vfs", [])) != sriov:
        problems.append(f"VM {name} has {sriov} SR-IOV NICs, holds VFs {alloc.get('sriov_vfs')}")
    if list(alloc.get("pci_devices", [])) != list(spec.get("pci_devices", [])):
        problems.append(
            f"VM {name} asks PCI {spec.get('pci_devices')}, holds {alloc['pci_devices']}"
        )
    return problems


# -- after the finish --------------------------------------------------------------------


def settled(node: Node) -> list[str]:
    """Once the operator's finish ran and a reconcile pass after it: N6 has nothing
    declared that is not applied, its last apply or repair worked, and the node's paths
    are what the declaration says (an empty plan)."""
    status = node.get("/api/v1/n6/status")
    problems = []
    if status["pending"]:
        problems.append(f"N6 declares what is not applied: {status['pending']}")
    last = status["last_apply"]
    if last is not None and not last["ok"]:
        problems.append(f"N6's last {last['trigger']} failed: {last['code']}: {last['message']}")
    with node.client() as c:
        changes = node.ok(c.post("/api/v1/n6/plan"))["changes"]
    left = [line for lines in changes.values() for line in lines]
    if left:
        problems.append(f"N6 paths drift from the declaration: {left}")
    return problems


# -- what the restart must say it repaired ------------------------------------------------


@dataclass(frozen=True)
class Repairs:
    """What the killed daemon left for its restart to repair, read from its state while
    it is dead, and the journal entries that must then say the restart did: a create
    cut off (its intent, vm_intents) undone with ``drift.create_undone``; a GPU left off
    its committed layout put back with ``gpu.layout_restored``; the N6 paths of the
    applied document, which the simulated backend kept in the dead process's memory,
    made again with ``n6.repaired`` (or a failed repair, ``n6.repair_failed``)."""

    head: int
    creates: dict[str, str]  # VM id -> name
    gpus: dict[str, str]  # GPU UUID -> how it is off its committed layout
    n6: bool

    @classmethod
    def needed(cls, node: Node) -> Repairs:
        assert node.daemon.proc.poll() is not None, "the daemon must be dead"
        state = _gpu_state(node)
        with contextlib.closing(node.db()) as db:
            meta = dict(db.execute("SELECT key, value FROM meta"))
            rows = {vm_id for (vm_id,) in db.execute("SELECT id FROM vm")}
            gpus = _off_layout(state, db) if state is not None else {}
        # The start restores the layouts of GPUs in MIG mode (GpuLayoutService.restore).
        mig = {g["uuid"] for g in state["gpus"] if g["mig_current"]} if state else set()
        gpus = {uuid: line for uuid, line in gpus.items() if uuid in mig}
        prefix = "vm_creating:"
        creates = {
            key.removeprefix(prefix): name
            for key, name in meta.items()
            if key.startswith(prefix) and key.removeprefix(prefix) not in rows
        }
        applied = json.loads(meta.get("n6_applied", "{}"))
        simulated = node.daemon.env.get("TOWERBOX_N6_BACKEND") == "simulated"
        n6 = simulated and bool(applied.get("trunks"))
        return cls(int(meta["journal_next_seq"]) - 1, creates, gpus, n6)

    def unsaid(self, node: Node) -> list[str]:
        """Repairs the restart made (or had to make) that no entry after it says."""
        with contextlib.closing(node.db()) as db:
            query = "SELECT kind, object_id FROM journal WHERE seq > ?"
            said = set(db.execute(query, (self.head,)))
        problems = []
        for vm_id, name in sorted(self.creates.items()):
            if (UNDONE, vm_id) not in said:
                problems.append(f"the create of VM {name} the kill cut off: no {UNDONE} entry")
        for gpu, line in sorted(self.gpus.items()):
            if ("gpu.layout_restored", gpu) not in said:
                problems.append(f"{line} before the restart: no gpu.layout_restored entry")
        if self.n6 and not {("n6.repaired", "node"), ("n6.repair_failed", "node")} & said:
            # A repair failing as the last one did is not journalled again (n6_status):
            # then the last outcome, journalled before, is that failure.
            last = node.get("/api/v1/n6/status")["last_apply"]
            if last is None or last["ok"] or last["trigger"] != "repair":
                problems.append("the N6 paths the kill took: no n6.repaired entry")
        return problems
