"""The journal read as history: who did what to which object, in a line a person reads.

The journal stores each object's new state (``null`` when it is deleted) for the
registry to fold; an operator reading it wants the object's name, the actor and what
changed. This module turns wire entries into such lines. It knows a few kinds by heart
(a VM's state change, a GPU layout, a deletion) and says the rest generically, so a
new kind is readable without a change here. Shared by the node and the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from towerbox_core.api.history import HistoryEntry
from towerbox_core.wire import WireEntry

_SUMMARY_LIMIT = 160
_GENERIC_FIELDS = 4


def known_name(object_type: str, object_id: str, state: Any) -> str | None:
    """The name an entry itself gives its object, if any.

    Users, tenants, services and VNets are keyed by name already; VMs and tokens carry
    theirs in the state.
    """
    if isinstance(state, dict) and object_type == "alert" and "rule" in state:
        return f"{state['rule']} on {state.get('object')}"
    if isinstance(state, dict):
        spec = state.get("spec")
        for holder in (state, spec if isinstance(spec, dict) else {}):
            if isinstance(holder.get("name"), str):
                return str(holder["name"])
    if object_type in {"user", "tenant", "service", "vnet", "trunk", "artifact", "desired"}:
        return object_id
    return None


def history(entries: Iterable[WireEntry], names: Mapping[str, str]) -> list[HistoryEntry]:
    """Entries as history lines, newest first; ``names`` maps object ids to names the
    caller found elsewhere (an object's row, or an older entry: a deletion's state is
    null, so it names nothing itself)."""
    entries = list(entries)
    in_page = {
        e.object_id: name
        for e in sorted(entries, key=lambda e: e.seq)
        if (name := known_name(e.object_type, e.object_id, e.state))
    }
    names = {**names, **in_page}
    lines = [
        HistoryEntry(
            seq=e.seq,
            at=e.created_at,
            kind=e.kind,
            object_type=e.object_type,
            object_id=e.object_id,
            object_name=known_name(e.object_type, e.object_id, e.state) or names.get(e.object_id),
            actor="job:node" if e.actor is None else e.actor.describe(),
            summary=summarize(e.kind, e.state),
            state=e.state,
        )
        for e in entries
    ]
    lines.sort(key=lambda line: line.seq, reverse=True)
    return lines


def summarize(kind: str, state: Any) -> str:
    """What an entry changed, in one short line."""
    action = kind.rpartition(".")[2].replace("_", " ")
    if state is None:
        return action  # "deleted", "removed": the object is gone
    if not isinstance(state, dict):
        return _clip(f"{action}: {_scalar(state)}")
    if kind.startswith("alert."):
        by = f" by {state['acked_by']}" if kind == "alert.acked" else ""
        return _clip(f"{action}{by}: {state.get('severity')}: {state.get('message')}")
    return _clip(_describe(kind, action, state))


def _describe(kind: str, action: str, state: dict[str, Any]) -> str:
    if kind == "vm.state":
        was = state.get("was")
        return f"{was} → {state.get('state')}" if was else f"now {state.get('state')}"
    if kind == "vm.created":
        spec = state.get("spec")
        return _vm_created(spec if isinstance(spec, dict) else state)
    if isinstance(state.get("layout"), dict):
        return f"{action}: {_layout(state['layout'])}"
    if "code" in state and ("detail" in state or "message" in state):
        return f"{action}: {state['code']}: {state.get('detail') or state.get('message')}"
    if "reason" in state:
        return f"{action}: {state['reason']}"
    return _generic(action, state)


def _vm_created(spec: dict[str, Any]) -> str:
    parts = [f"{spec['vcpus']} vCPU" if "vcpus" in spec else None]
    if "memory_mib" in spec:
        parts.append(f"{spec['memory_mib']} MiB")
    for key in ("role", "tenant", "image"):
        if isinstance(spec.get(key), str):
            parts.append(f"{key} {spec[key]}")
    gpu = spec.get("gpu")
    if isinstance(gpu, dict):
        parts.append("GPU " + " ".join(str(v) for v in gpu.values() if v is not None))
    return "created: " + ", ".join(p for p in parts if p)


def _layout(layout: dict[str, Any]) -> str:
    instances = layout.get("instances")
    if not isinstance(instances, list):
        return _generic("layout", layout)
    counts: dict[str, int] = {}
    for instance in instances:
        profile = instance.get("profile", "?") if isinstance(instance, dict) else "?"
        counts[str(profile)] = counts.get(str(profile), 0) + 1
    if not counts:
        return "no instances"
    return ", ".join(f"{n} x {profile}" for profile, n in sorted(counts.items()))


def _generic(action: str, state: dict[str, Any]) -> str:
    fields = [
        f"{key}={_scalar(value)}"
        for key, value in state.items()
        if key != "name" and isinstance(value, str | int | float | bool)
    ]
    rest = len(state) - ("name" in state) - min(len(fields), _GENERIC_FIELDS)
    shown = fields[:_GENERIC_FIELDS] + ([f"+{rest} more"] if rest > 0 else [])
    return f"{action}: {', '.join(shown)}" if shown else action


def _scalar(value: Any) -> str:
    return str(value) if isinstance(value, str | int | float | bool) else type(value).__name__


def _clip(text: str) -> str:
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 1] + "…"
