"""What a new services document changes in a service the ``services`` kind made:
the rolling updates and scales that take it from its recorded template to the
document's, and the replicas those scales add (which the document is admitted for
before anything starts)."""

from __future__ import annotations

import msgspec

from appliance.services.service_rows import replicas
from towerbox_core.api.services import RoleTemplate, ServiceTemplate, SpecOverrides, UpdateRequest
from towerbox_core.errors import InvalidInput

Change = UpdateRequest | tuple[str, int]  # a role's rolling update, or its new count
Wanted = list[tuple[RoleTemplate, int]]  # more replicas of each role


def changes_between(name: str, old: ServiceTemplate, new: ServiceTemplate) -> list[Change]:
    """The rolling updates and scales that take ``old`` (as recorded, a role recorded
    before versions at its entry's version now) to ``new``; a change of anything
    else (roles, order, health, GPU, VNets, description) is refused: remove the service
    and deploy it again under a new name."""

    def shape(t: ServiceTemplate) -> list[RoleTemplate]:
        return [
            msgspec.structs.replace(
                r, count=0, catalog="", version=None, values={}, spec=SpecOverrides()
            )
            for r in t.roles
        ]

    if shape(old) != shape(new) or old.description != new.description:
        raise InvalidInput(
            f"service {name}: only a role's count, catalog entry and version, values and "
            "spec change in place; remove the service and deploy it under a new name",
            code="service_change_unsupported",
            field=f"services.{name}",
        )
    todo: list[Change] = []
    for was, role in zip(old.roles, new.roles, strict=True):
        if (was.catalog, was.version, was.values, was.spec) != (
            role.catalog,
            role.version,
            role.values,
            role.spec,
        ):
            todo.append(
                UpdateRequest(
                    role.name,
                    catalog=role.catalog,
                    version=role.version,
                    values=role.values,
                    spec=role.spec,
                )
            )
        if was.count != role.count:
            todo.append((role.name, role.count))
    return todo


def scale_ups(name: str, old: ServiceTemplate, new: ServiceTemplate, todo: list[Change]) -> Wanted:
    """The replicas the scales among ``todo`` add, each as its role will be made: from
    the count the service has or is being brought to, whichever is more."""
    was = {r.name: r.count for r in old.roles}
    roles = {r.name: r for r in new.roles}
    ups: Wanted = []
    for change in todo:
        if isinstance(change, tuple):
            role, count = change
            if (more := count - max(was[role], len(replicas(name, role)))) > 0:
                ups.append((roles[role], more))
    return ups
