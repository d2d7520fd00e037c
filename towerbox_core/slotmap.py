"""A MIG layout as blocks on two rulers: memory slots and compute slices (pure; both UIs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Block:
    start: int
    span: int
    role: str  # vran | b2b | free
    label: str
    owner: str | None = None

    @property
    def free(self) -> bool:
        return self.role == "free"


@dataclass(frozen=True)
class Geometry:
    memory_slots: int
    compute_slices: int
    sizes: dict[str, int]  # profile -> memory slots
    compute: dict[str, int]  # profile -> compute slices


def geometry(profiles: list[dict[str, Any]]) -> Geometry:
    sizes = {p["name"]: int(p["size"]) for p in profiles}
    compute = {p["name"]: int(p["compute_slices"]) for p in profiles}
    slots = max((s + int(p["size"]) for p in profiles for s in p.get("starts", [])), default=0)
    return Geometry(slots, max(compute.values(), default=0), sizes, compute)


def _with_free(taken: list[Block], total: int) -> list[Block]:
    covered = {i for b in taken for i in range(b.start, b.start + b.span)}
    free = [Block(i, 1, "free", "free") for i in range(total) if i not in covered]
    return sorted(taken + free, key=lambda b: b.start)


def memory_blocks(instances: list[dict[str, Any]], geo: Geometry) -> list[Block]:
    taken = [
        Block(
            int(inst["start"]),
            geo.sizes.get(inst["profile"], 1),
            str(inst.get("role") or "b2b"),
            str(inst["profile"]),
            inst.get("owner"),
        )
        for inst in instances
    ]
    return _with_free(taken, geo.memory_slots)


def compute_blocks(instances: list[dict[str, Any]], geo: Geometry) -> list[Block]:
    """Compute slices sit under the memory slots they start at; the last memory slot of
    an H100/A100 has none, so a slice group starting there is pulled back to fit."""
    taken = []
    for inst in instances:
        span = geo.compute.get(inst["profile"], 1)
        start = min(int(inst["start"]), geo.compute_slices - span)
        taken.append(
            Block(
                start, span, str(inst.get("role") or "b2b"), str(inst["profile"]), inst.get("owner")
            )
        )
    return _with_free(taken, geo.compute_slices)


def plan_lines(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """The dry-run as a diff: ('-'|'+'|'=', text)."""

    def text(inst: dict[str, Any]) -> str:
        owner = f", owner {inst['owner']}" if inst.get("owner") else ""
        return f"{inst['profile']} at slot {inst['start']} ({inst.get('role', 'b2b')}{owner})"

    lines = [("-" if op["op"] == "destroy" else "+", text(op)) for op in plan.get("ops", [])]
    lines.sort(key=lambda line: line[0] != "-")  # destroys first, as they run
    lines.extend(("=", text(inst)) for inst in plan.get("kept", []))
    return lines


def target_instances(plan: dict[str, Any]) -> list[dict[str, Any]]:
    created = [
        {k: v for k, v in op.items() if k != "op"}
        for op in plan.get("ops", [])
        if op["op"] == "create"
    ]
    return sorted([*plan.get("kept", []), *created], key=lambda i: (i["start"], i["profile"]))
