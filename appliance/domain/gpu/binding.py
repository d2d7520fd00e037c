"""Which MIG instance a workload gets: pure rules over a layout.

A workload (a VM, or a process that asked for a slice) owns at most one instance per
GPU. The instance it already owns comes first, so a restart lands where it was; then
a free instance of the profile and role it asked for, lowest slot first. A B2B
request never takes the vRAN slice, and only a vRAN request takes it.
"""

from __future__ import annotations

from appliance.domain.gpu.layout import Instance, Layout, MigRole

PROCESS_OWNER_PREFIX = "process:"


def process_owner(name: str, tenant: str | None = None) -> str:
    """The owner string of a process claim; VM owners are plain VM names.

    A tenant's claim is ``process:TENANT/NAME``: names cannot hold a slash, so two
    tenants (and the operator's own ``process:NAME``) never share an owner.
    """
    return (
        f"{PROCESS_OWNER_PREFIX}{name}"
        if tenant is None
        else f"{PROCESS_OWNER_PREFIX}{tenant}/{name}"
    )


def is_process_owner(owner: str | None) -> bool:
    return owner is not None and owner.startswith(PROCESS_OWNER_PREFIX)


def process_claim_tenant(owner: str | None) -> str | None:
    """The tenant a process claim belongs to; None for the operator's own or a VM."""
    if owner is None or not is_process_owner(owner):
        return None
    tenant, slash, _ = owner.removeprefix(PROCESS_OWNER_PREFIX).partition("/")
    return tenant if slash else None


def owned_by(layout: Layout, owner: str) -> Instance | None:
    for inst in layout.instances:
        if inst.owner == owner:
            return inst
    return None


def matches(inst: Instance, profile: str | None, role: MigRole) -> bool:
    return inst.role is role and (profile is None or inst.profile == profile)


def choose(layout: Layout, owner: str, profile: str | None, role: MigRole) -> Instance | None:
    """The instance this owner should use: its own if it still fits, else a free one."""
    mine = owned_by(layout, owner)
    if mine is not None and matches(mine, profile, role):
        return mine
    free = [i for i in layout.instances if i.owner is None and matches(i, profile, role)]
    return min(free, key=lambda i: (i.start, i.profile)) if free else None


def with_owner(layout: Layout, placement: tuple[str, int], owner: str | None) -> Layout:
    """The same layout with one instance's owner set (or cleared with None)."""
    instances = tuple(
        Instance(i.profile, i.start, i.role, owner) if i.placement == placement else i
        for i in layout.instances
    )
    return Layout(layout.gpu_model, instances)


def without_owner(layout: Layout, owner: str) -> Layout:
    instances = tuple(
        Instance(i.profile, i.start, i.role, None) if i.owner == owner else i
        for i in layout.instances
    )
    return Layout(layout.gpu_model, instances)
