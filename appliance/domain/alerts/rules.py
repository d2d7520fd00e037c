"""The alert rules, as data: what each one watches on the node, how Prometheus says
the same over the exported metrics, how bad it is and what the operator does.

The node evaluates ``check`` on its own readings (no Prometheus, no WAN needed); an
operator who runs Prometheus loads the same rules rendered from ``expr``
(``alerts_promql``). Both sides read the same figures: ``check`` the readings that
``appliance.metrics_health`` and the snapshot metrics export, ``expr`` those metrics.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.domain.alerts.readings import NodeReadings


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class AlertBounds:
    """``[alerts]`` in the appliance's configuration."""

    interval_s: float = 15.0  # how often the node evaluates the rules
    restart_loop_count: int = 3  # restarts within the window that make a loop
    restart_loop_window_s: float = 900.0
    journal_backlog_entries: int = 50_000
    journal_oldest_unacked_s: float = 3600.0
    wan_offline_s: float = 900.0
    disk_free_ratio: float = 0.10
    keep_resolved_days: float = 7.0  # resolved alerts listed by ?all, then removed
    # Per rule id: how long its condition must hold before it fires, replacing the
    # rule's own ``for_s`` (e.g. {"vran_vm_down" = 10}).
    for_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    object: str  # "vm:<name>", "gpu:<uuid>", "hugepages:node<n>:<size>", "job:<id>", "node"
    message: str  # what is wrong, with the figures
    tenant: str | None = None  # whose object it is (None: the node's)


Check = Callable[[NodeReadings, AlertBounds], list[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str
    runbook: str  # what the operator does
    for_s: float  # how long the condition holds before it fires (Prometheus ``for:``)
    check: Check
    expr: Callable[[AlertBounds], str]  # the same condition in PromQL
    # How Prometheus names the alert's object from ``expr``'s labels: the same name
    # the node gives it.
    object_template: str = "node"

    def holds_for(self, bounds: AlertBounds) -> float:
        return bounds.for_s.get(self.id, self.for_s)


def _vm(name: str) -> str:
    return f"vm:{name}"


def _vran_down(r: NodeReadings, _: AlertBounds) -> list[Finding]:
    return [
        Finding(_vm(vm.name), f"vRAN VM {vm.name} is {vm.state} (desired {vm.desired})", vm.tenant)
        for vm in r.vms
        if vm.role == "vran" and vm.state != "running"
    ]


def _restart_loop(r: NodeReadings, b: AlertBounds) -> list[Finding]:
    minutes = b.restart_loop_window_s / 60
    return [
        Finding(
            _vm(vm.name),
            f"VM {vm.name} was restarted {vm.restarts} times in the last {minutes:g} min",
            vm.tenant,
        )
        for vm in r.vms
        if vm.restarts >= b.restart_loop_count
    ]


def _layout_drift(r: NodeReadings, _: AlertBounds) -> list[Finding]:
    return [Finding(f"gpu:{g.uuid}", f"{g.name}: " + "; ".join(g.drift)) for g in r.gpus if g.drift]


def _mig_missing(r: NodeReadings, _: AlertBounds) -> list[Finding]:
    return [
        Finding(f"gpu:{g.uuid}", f"{g.name}: {g.missing} committed MIG instance(s) are missing")
        for g in r.gpus
        if g.missing
    ]


def _hugepages(r: NodeReadings, _: AlertBounds) -> list[Finding]:
    if not any(vm.role == "vran" for vm in r.vms):
        return []
    return [
        Finding(
            f"hugepages:node{p.numa_node}:{p.size}",
            f"NUMA node {p.numa_node} has no free {p.size} hugepages left (of {p.total})",
        )
        for p in r.health.hugepages
        if p.total > 0 and p.free == 0
    ]


def _node_if(holds: bool, message: str) -> list[Finding]:
    """A node-wide finding when ``holds``."""
    return [Finding("node", message)] if holds else []


def _backlog(r: NodeReadings, b: AlertBounds) -> list[Finding]:
    unacked = r.health.journal_unacked
    return _node_if(
        unacked > b.journal_backlog_entries,
        f"{unacked} journal entries wait for the registry (bound {b.journal_backlog_entries})",
    )


def _oldest(r: NodeReadings, b: AlertBounds) -> list[Finding]:
    age = r.health.journal_oldest_unacked_age_s
    return _node_if(
        age > b.journal_oldest_unacked_s,
        f"the oldest journal entry the registry has not acknowledged is {age / 60:.0f} min "
        f"old (bound {b.journal_oldest_unacked_s / 60:g} min)",
    )


def _wan(r: NodeReadings, b: AlertBounds) -> list[Finding]:
    h = r.health
    if h.wan_up or h.wan_last_sync is None or r.at - h.wan_last_sync <= b.wan_offline_s:
        return []
    minutes = (r.at - h.wan_last_sync) / 60
    return [Finding("node", f"no sync with the registry for {minutes:.0f} min; the WAN is down")]


def _disk(r: NodeReadings, b: AlertBounds) -> list[Finding]:
    free, size = r.health.disk_free, r.health.disk_size
    if free is None or not size or free / size >= b.disk_free_ratio:
        return []
    return [
        Finding(
            "node",
            f"the state disk has {free / 2**20:.0f} MiB free of {size / 2**20:.0f} MiB "
            f"({100 * free / size:.1f} %, bound {100 * b.disk_free_ratio:g} %)",
        )
    ]


def _unresponsive(r: NodeReadings, _: AlertBounds) -> list[Finding]:
    return [
        Finding(_vm(vm.name), f"the QEMU of VM {vm.name} does not answer its monitor", vm.tenant)
        for vm in r.vms
        if vm.state == "unresponsive"
    ]


def _schedule(r: NodeReadings, _: AlertBounds) -> list[Finding]:
    return [
        Finding(f"job:{j.job}", f"scheduled job {j.job} failed: {j.error or 'see the log'}")
        for j in r.health.jobs
        if j.last_success is False
    ]


RULES: tuple[Rule, ...] = (
    Rule(
        "vran_vm_down",
        Severity.CRITICAL,
        "A vRAN VM is not running",
        "Cell service is down: check `towerbox vm get NAME` and its console; start it with "
        "`towerbox vm start NAME`; if it stops again, check the host (hugepages, pinned "
        "cores, the vRAN MIG slice).",
        30.0,
        _vran_down,
        lambda b: 'towerbox_vm_state{role="vran",state!="running"} == 1',
        "vm:{{ $labels.vm }}",
    ),
    Rule(
        "vm_restart_loop",
        Severity.WARNING,
        "A VM is restarting in a loop",
        "The node keeps restarting a VM that keeps stopping: read its console "
        "(`towerbox vm console NAME`); stop it to end the loop while you fix the cause.",
        0.0,
        _restart_loop,
        lambda b: (
            f"increase(towerbox_vm_restarts_total[{b.restart_loop_window_s:g}s]) "
            f">= {b.restart_loop_count}"
        ),
        "vm:{{ $labels.vm }}",
    ),
    Rule(
        "gpu_layout_drift",
        Severity.WARNING,
        "A GPU's MIG layout differs from the committed one",
        "Something outside Towerbox changed the GPU (driver reset, nvidia-smi): check "
        "`towerbox gpu list` and apply the committed layout again (`towerbox gpu apply`).",
        60.0,
        _layout_drift,
        lambda b: "towerbox_gpu_layout_drift > 0",
        "gpu:{{ $labels.gpu }}",
    ),
    Rule(
        "mig_instance_missing",
        Severity.CRITICAL,
        "A committed MIG instance is missing",
        "The VMs on the missing slice cannot run: re-apply the committed layout with "
        "`towerbox gpu apply`; if it fails, check the driver (`nvidia-smi mig -lgi`).",
        60.0,
        _mig_missing,
        lambda b: "towerbox_mig_instances_missing > 0",
        "gpu:{{ $labels.gpu }}",
    ),
    Rule(
        "hugepages_exhausted",
        Severity.WARNING,
        "Hugepages are exhausted on a node that runs vRAN",
        "A vRAN VM that restarts cannot get its memory back: free hugepages (stop a B2B VM "
        "that holds them) or grow the pool on the kernel command line.",
        60.0,
        _hugepages,
        lambda b: (
            "(towerbox_hugepages_free == 0 and towerbox_hugepages_total > 0) "
            'and on() group(towerbox_vm_state{role="vran"})'
        ),
        "hugepages:node{{ $labels.numa_node }}:{{ $labels.size }}",
    ),
    Rule(
        "journal_backlog",
        Severity.WARNING,
        "The journal backlog is above its bound",
        "The registry is not taking the node's journal: check `towerbox agent status` and "
        "the WAN; the backlog drains by itself once the link is back.",
        300.0,
        _backlog,
        lambda b: f"towerbox_journal_unacked_entries > {b.journal_backlog_entries}",
    ),
    Rule(
        "journal_oldest_unacked",
        Severity.WARNING,
        "The oldest unacknowledged journal entry is too old",
        "The fleet view of this node is stale: check the edge agent (`towerbox agent "
        "status`) and the registry's reachability.",
        0.0,
        _oldest,
        lambda b: f"towerbox_journal_oldest_unacked_age_seconds > {b.journal_oldest_unacked_s:g}",
    ),
    Rule(
        "wan_offline",
        Severity.WARNING,
        "The WAN has been offline too long",
        "The node runs on its own: check the uplink and the agent's last error "
        "(`towerbox agent status`); nothing on the node needs restarting.",
        0.0,
        _wan,
        lambda b: (
            "towerbox_wan_up == 0 and on() "
            f"(time() - towerbox_wan_last_sync_timestamp_seconds) > {b.wan_offline_s:g}"
        ),
    ),
    Rule(
        "disk_space_low",
        Severity.CRITICAL,
        "The state disk is nearly full",
        "Writes stop at the reserve: remove unused images (`towerbox artifact gc`) or old "
        "VM disks, or grow the filesystem of the state directory.",
        60.0,
        _disk,
        lambda b: (
            "towerbox_state_disk_free_bytes / towerbox_state_disk_size_bytes "
            f"< {b.disk_free_ratio:g}"
        ),
    ),
    Rule(
        "qemu_unresponsive",
        Severity.CRITICAL,
        "A VM's QEMU is not answering",
        "The guest may be stuck: `towerbox vm stop NAME` forces it off, then start it; "
        "check the host's kernel log for the QEMU process.",
        0.0,
        _unresponsive,
        lambda b: 'towerbox_vm_state{state="unresponsive"} == 1',
        "vm:{{ $labels.vm }}",
    ),
    Rule(
        "schedule_failed",
        Severity.WARNING,
        "A scheduled job failed",
        "Read the journal (`towerbox journal --kind gpu.schedule_failed`) and the daemon's "
        "log for the job; a GPU schedule leaves the GPU on its last good layout.",
        0.0,
        _schedule,
        lambda b: "towerbox_job_last_success == 0",
        "job:{{ $labels.job }}",
    ),
)

RULES_BY_ID = {rule.id: rule for rule in RULES}
