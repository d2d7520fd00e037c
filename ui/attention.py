"""What needs the operator now, from the API's current state: VMs not as they should
be (with the reason and since-when), GPUs off their committed layout, a failed N6
apply and N6 changes declared but not applied. Shown on the dashboard, as badges in
the VM table and on the VM page."""

from __future__ import annotations

from typing import Any

from ui import fmt

# How each kind reads in a badge.
LABELS = {
    "waiting_for_gpu": "waiting for a GPU slice",
    "start_failed": "start failed",
    "draining": "moving to a new slice",
    "stopped": "stopped outside Towerbox",
    "changed_outside": "started outside Towerbox",
    "missing": "domain missing",
    "unresponsive": "unresponsive",
}


def badge(vm: dict[str, Any]) -> str:
    """The VM table's short word for what is wrong ("" when nothing is)."""
    attention = vm.get("attention")
    if not attention:
        return ""
    return LABELS.get(str(attention.get("kind")), str(attention.get("kind")))


def vm_line(vm: dict[str, Any]) -> str:
    """ "llm-1 (desired running, shutoff): waiting for a GPU slice since 10:02: <reason>"."""
    attention = vm.get("attention") or {}
    since = f" since {fmt.when(attention['since'])}" if attention.get("since") else ""
    return (
        f"{vm['name']} (desired {vm.get('desired_state')}, {vm.get('state')}): "
        f"{badge(vm)}{since}: {attention.get('reason', '')}"
    )


def lines(
    vms: list[dict[str, Any]] | None,
    gpus: dict[str, Any] | None,
    n6_status: dict[str, Any] | None,
) -> list[str]:
    """Everything that needs attention now, vRAN and UPF VMs first."""
    found: list[str] = []
    order = {"vran": 0, "upf": 1}
    for vm in sorted(vms or [], key=lambda v: (order.get(v.get("role", ""), 2), v["name"])):
        if vm.get("attention"):
            found.append(vm_line(vm))
    for gpu in (gpus or {}).get("gpus", []):
        for drift in gpu.get("drift") or []:
            found.append(f"GPU {gpu.get('name')} ({gpu.get('uuid')}): {drift}")
    last = (n6_status or {}).get("last_apply")
    if last and not last.get("ok"):
        found.append(
            f"N6 not applied: the last apply failed at {fmt.when(last.get('at'))}: "
            f"[{last.get('code')}] {last.get('message')}"
        )
    pending = (n6_status or {}).get("pending") or []
    if pending:
        found.append(
            f"N6 changes not applied: {', '.join(map(str, pending))} (the N6 page's plan "
            "shows them; apply to make them)"
        )
    return found
