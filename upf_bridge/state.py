"""The objects a backend manages, and the diff between what is and what should be. Pure.

A backend reads what it owns into a ``State`` (objects keyed by kind and key), builds
the desired ``State`` from an ``N6Config`` and hands both to ``diff``. Objects are
frozen values: equal key and equal fields means nothing to do. Routes, rules and
addresses have no fields outside their key, so they are only ever created or deleted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class OvsBridge:
    kind: ClassVar[str] = "ovs-bridge"
    layer: ClassVar[int] = 0
    name: str
    datapath_type: str
    owned: bool

    @property
    def key(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"ovs bridge {self.name} (datapath {self.datapath_type})"


@dataclass(frozen=True)
class OvsPort:
    """A trunk port (``trunks``) or a VNet's internal access port (``tag``)."""

    kind: ClassVar[str] = "ovs-port"
    layer: ClassVar[int] = 1
    name: str
    bridge: str
    owned: bool  # False: a declared trunk port the operator made; never deleted
    tag: int | None = None
    trunks: tuple[int, ...] = ()
    internal: bool = False
    mtu: int | None = None
    vnet: str | None = None
    # Internal port: its MAC, set when it is created and never changed after.
    mac: str | None = field(default=None, compare=False)
    # Kernel side of an internal port: administratively up and in gateway mode
    # (sysctl.write_gateway_mode).
    up: bool = False
    gateway: bool = False

    @property
    def key(self) -> str:
        return self.name

    def describe(self) -> str:
        if self.internal:
            return (
                f"ovs port {self.name} on {self.bridge}: VLAN {self.tag}, MTU {self.mtu}"
                f" (VNet {self.vnet})"
            )
        vlans = ",".join(map(str, self.trunks)) or "none"
        return f"ovs trunk port {self.name} on {self.bridge}: VLANs {vlans}"


@dataclass(frozen=True)
class Link:
    """A kernel link Towerbox creates: a VNet's Linux bridge or VLAN sub-interface."""

    kind: ClassVar[str] = "link"
    layer: ClassVar[int] = 1
    name: str
    link_kind: str  # "bridge" or "vlan"
    vnet: str
    mtu: int
    parent: str | None = None  # vlan: the trunk NIC
    vid: int | None = None
    master: str | None = None  # vlan: the VNet's bridge
    up: bool = True
    gateway: bool = False  # bridge: in gateway mode (sysctl.write_gateway_mode)
    # Bridge: its MAC, set when it is created and never changed after.
    mac: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return self.name

    def describe(self) -> str:
        if self.link_kind == "vlan":
            return (
                f"vlan {self.name} on {self.parent} (VLAN {self.vid}) in bridge "
                f"{self.master}, MTU {self.mtu} (VNet {self.vnet})"
            )
        return f"bridge {self.name}, MTU {self.mtu} (VNet {self.vnet})"


@dataclass(frozen=True)
class Address:
    kind: ClassVar[str] = "address"
    layer: ClassVar[int] = 3
    dev: str
    cidr: str  # "10.1.0.1/24"

    @property
    def key(self) -> str:
        return f"{self.cidr} dev {self.dev}"

    def describe(self) -> str:
        return f"address {self.key}"


@dataclass(frozen=True)
class Route:
    kind: ClassVar[str] = "route"
    layer: ClassVar[int] = 4
    table: int
    dst: str  # "0.0.0.0/0" for the default route
    route_type: str = "unicast"  # or "unreachable"
    gateway: str | None = None
    dev: str | None = None

    @property
    def key(self) -> str:
        words = ["unreachable"] if self.route_type == "unreachable" else []
        words.append("default" if self.dst == "0.0.0.0/0" else self.dst)
        if self.gateway:
            words += ["via", self.gateway]
        if self.dev:
            words += ["dev", self.dev]
        words += ["table", str(self.table)]
        return " ".join(words)

    def describe(self) -> str:
        return f"route {self.key}"


@dataclass(frozen=True)
class Rule:
    kind: ClassVar[str] = "rule"
    layer: ClassVar[int] = 5
    priority: int
    table: int
    src: str | None = None  # "10.45.0.0/16"
    iif: str | None = None
    dst: str | None = None

    @property
    def key(self) -> str:
        words = [f"{self.priority}:"]
        if self.src:
            words += ["from", self.src]
        if self.iif:
            words += ["iif", self.iif]
        if self.dst:
            words += ["to", self.dst]
        return " ".join([*words, "lookup", str(self.table)])

    def describe(self) -> str:
        return f"rule {self.key}"


Resource = OvsBridge | OvsPort | Link | Address | Route | Rule
State = dict[tuple[str, str], Resource]


def _rank(res: Resource) -> tuple[int, int]:
    # A VLAN link joins its bridge, so it comes after bridges in the same layer.
    sub = 1 if isinstance(res, Link) and res.link_kind == "vlan" else 0
    return (res.layer, sub)


def _replaced(have: Resource, want: Resource) -> bool:
    """True when an object must be re-created rather than changed in place."""
    fixed: tuple[str, ...]
    if isinstance(have, Link) and isinstance(want, Link):
        fixed = ("link_kind", "vnet", "parent", "vid", "master")
    elif isinstance(have, OvsPort) and isinstance(want, OvsPort):
        fixed = ("bridge", "owned", "internal", "vnet")
    elif isinstance(have, OvsBridge) and isinstance(want, OvsBridge):
        fixed = ("datapath_type", "owned")
    else:
        return True
    return any(getattr(have, f) != getattr(want, f) for f in fixed)


def state_of(resources: Iterable[Resource]) -> State:
    return {(r.kind, r.key): r for r in resources}


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


_SIGN = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-"}


@dataclass(frozen=True)
class Change:
    action: Action
    before: Resource | None
    after: Resource | None

    @property
    def resource(self) -> Resource:
        res = self.after if self.after is not None else self.before
        if res is None:
            raise ValueError("a change has a before or an after")
        return res

    def inverse(self) -> Change:
        undo = {Action.CREATE: Action.DELETE, Action.DELETE: Action.CREATE}
        return Change(undo.get(self.action, Action.UPDATE), self.after, self.before)

    def __str__(self) -> str:
        text = f"{_SIGN[self.action]} {self.resource.describe()}"
        if self.action == Action.UPDATE and self.before is not None:
            text += f" (was: {self.before.describe()})"
        return text


@dataclass(frozen=True)
class Diff:
    """What an apply does, in the order it does it: deletes, updates, creates."""

    create: tuple[Change, ...] = ()
    update: tuple[Change, ...] = ()
    delete: tuple[Change, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)

    @property
    def changes(self) -> tuple[Change, ...]:
        return self.delete + self.update + self.create

    def lines(self) -> list[str]:
        return [str(c) for c in self.changes]

    def __str__(self) -> str:
        return "\n".join(self.lines()) if not self.empty else "no changes"


def diff(current: Mapping[tuple[str, str], Resource], desired: State) -> Diff:
    """Deletes top layer first (rules before the ports they use), creates bottom first."""
    creates = [Change(Action.CREATE, None, r) for k, r in desired.items() if k not in current]
    deletes = [Change(Action.DELETE, r, None) for k, r in current.items() if k not in desired]
    updates = []
    for k, want in desired.items():
        have = current.get(k)
        if have is None or have == want:
            continue
        if _replaced(have, want):
            deletes.append(Change(Action.DELETE, have, None))
            creates.append(Change(Action.CREATE, None, want))
        else:
            updates.append(Change(Action.UPDATE, have, want))
    creates.sort(key=lambda c: (_rank(c.resource), c.resource.key))
    updates.sort(key=lambda c: (_rank(c.resource), c.resource.key))
    deletes.sort(key=lambda c: (_rank(c.resource), c.resource.key), reverse=True)
    return Diff(tuple(creates), tuple(updates), tuple(deletes))
