"""A service's rows: the service itself, its replicas, and the journal entries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import msgspec

from appliance.store import journal
from appliance.store.models import Service, ServiceVm, Vm, utcnow
from towerbox_core.api.services import RoleTemplate, ServiceTemplate
from towerbox_core.errors import Conflict, NotFound

_decode_template = msgspec.json.Decoder(ServiceTemplate).decode
_decode_generations = msgspec.json.Decoder(dict[str, int]).decode


@dataclass(frozen=True)
class Replica:
    vm_id: str
    vm: str
    role: str
    number: int
    generation: int
    created_at: dt.datetime


def template_of(row: Service) -> ServiceTemplate:
    return _decode_template(row.template)


def generations_of(row: Service) -> dict[str, int]:
    return _decode_generations(row.generations)


def role_of(row: Service, role: str) -> RoleTemplate | None:
    return next((r for r in template_of(row).roles if r.name == role), None)


def role_named(row: Service, role: str) -> RoleTemplate:
    """The role a request names; NotFound (404 role_not_found) lists the roles there are."""
    found = role_of(row, role)
    if found is None:
        roles = ", ".join(r.name for r in template_of(row).roles)
        raise NotFound(
            f"service {row.name} has no role {role!r}; its roles: {roles}",
            code="role_not_found",
        )
    return found


def replicas(service: str, role: str | None = None) -> list[Replica]:
    """The service's replica VMs, oldest number first."""
    query = (
        ServiceVm.select(ServiceVm, Vm.id, Vm.name, Vm.created_at)
        .join(Vm)
        .where(ServiceVm.service == service)
        .order_by(ServiceVm.role, ServiceVm.number)
    )
    if role is not None:
        query = query.where(ServiceVm.role == role)
    return [
        Replica(row.vm.id, row.vm.name, row.role, row.number, row.generation, row.vm.created_at)
        for row in query
    ]


def replica_of(vm_id: str) -> tuple[str, str] | None:
    """The service and the role a VM is a replica of; None for a VM of its own."""
    found = (
        ServiceVm.select(ServiceVm.service, ServiceVm.role)
        .where(ServiceVm.vm == vm_id)
        .tuples()
        .first()
    )
    return None if found is None else (str(found[0]), str(found[1]))


def refuse_replica(vm_id: str, name: str) -> None:
    """Refuse to delete a service's replica on its own: it would only leave its role
    short. The service deletes it (scale down, remove)."""
    owner = replica_of(vm_id)
    if owner is None:
        return
    service, role = owner
    raise Conflict(
        f"VM {name} is a replica of role {role} of service {service}; the service "
        f"deletes its replicas: scale the role down (towerbox service scale {service} "
        f"{role} N) or remove the service (towerbox service remove {service})",
        code="vm_in_service",
        service=service,
        role=role,
    )


def newest_first(found: list[Replica]) -> list[Replica]:
    return sorted(found, key=lambda r: (r.created_at, r.number), reverse=True)


def free_number(service: str, role: str) -> int:
    """The smallest replica number not in use, from 1: names stay short after updates."""
    used = {r.number for r in replicas(service, role)}
    n = 1
    while n in used:
        n += 1
    return n


def add_replica(vm_id: str, service: str, role: str, number: int, generation: int) -> None:
    with journal.write_transaction():
        ServiceVm.create(vm=vm_id, service=service, role=role, number=number, generation=generation)


def put_service(template: ServiceTemplate, tenant: str, state: str) -> None:
    """A new service row (or a failed one replaced) before anything is made."""
    encoded = msgspec.json.encode(template).decode()
    generations = msgspec.json.encode({r.name: 0 for r in template.roles}).decode()
    with journal.write_transaction():
        Service.delete().where(Service.name == template.name).execute()
        Service.create(
            name=template.name,
            tenant=tenant,
            template=encoded,
            generations=generations,
            state=state,
            message="",
        )


def set_state(
    name: str,
    state: str,
    message: str = "",
    *,
    kind: str | None = None,
    detail: dict[str, Any] | None = None,
    template: ServiceTemplate | None = None,
    generations: dict[str, int] | None = None,
) -> None:
    """The service's state, and a journal entry ``kind`` when the change is one."""
    changes: dict[Any, Any] = {
        Service.state: state,
        Service.message: message,
        Service.updated_at: utcnow(),
    }
    if template is not None:
        changes[Service.template] = msgspec.json.encode(template).decode()
    if generations is not None:
        changes[Service.generations] = msgspec.json.encode(generations).decode()
    with journal.write_transaction():
        Service.update(changes).where(Service.name == name).execute()
        if kind is not None:
            row = Service.get_by_id(name)
            entry = {
                "tenant": row.tenant,
                "state": state,
                "message": message,
                "template": _journalled(template_of(row)),
                **(detail or {}),
            }
            journal.append(kind, "service", name, entry)


def delete_service(name: str) -> None:
    with journal.write_transaction():
        Service.delete().where(Service.name == name).execute()
        journal.append("service.removed", "service", name, None)


# A role's values may hold secrets (an API key for the model hub): the row keeps
# them to create later replicas, the journal only their names.
NOT_JOURNALLED = "(not journalled)"


def _journalled(template: ServiceTemplate) -> dict[str, Any]:
    found: dict[str, Any] = msgspec.to_builtins(template)
    for role in found.get("roles", []):
        role["values"] = dict.fromkeys(role.get("values", {}), NOT_JOURNALLED)
    return found
