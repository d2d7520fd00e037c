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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from appliance.backends.vm.libvirt_backend import LibvirtBackend
from appliance.config import Config
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
                node.daemon.restart(START_WITHIN_S)
                result.problems += [f"after restart: {p}" for p in invariants(node)]
                result.problems += [f"after restart: {p}" for p in op.check(node)]
                if not result.problems:
                    op.finish(node)
                    wait_reconciled(node)
                    result.problems += [f"after finish: {p}" for p in invariants(node)]
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


def _gpu_matches_committed(node: Node, db: sqlite3.Connection, rows: dict[str, str]) -> list[str]:
    """The simulated GPUs hold exactly the committed layouts, and a slice's workload is
    a VM that exists or a process claim."""
    path = Path(node.cfg.state_dir) / "gpu-simulator.json"
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    committed = {
        uuid: sorted((i["profile"], i["start"]) for i in json.loads(layout)["instances"])
        for uuid, layout in db.execute("SELECT gpu_uuid, layout FROM gpu_layout")
    }
    problems = []
    for gpu in state["gpus"]:
        have = sorted((i["profile"], i["start"]) for i in gpu["instances"])
        want = committed.get(gpu["uuid"])
        if want is not None and have != want:
            problems.append(f"GPU {gpu['uuid']} holds {have}, its committed layout is {want}")
    claims = node.get("/api/v1/gpus/claims")
    for claim in claims:
        owner = claim["owner"]
        if not owner.startswith("process:") and owner not in rows.values():
            problems.append(f"GPU claim held by {owner}, which is no VM")
    return problems
