"""Service templates on this node: files in images/services, what a deploy request
asks for, the checks only the node can make, and each replica's VM create request.

``replica_request`` is the one place a role turns into a VM create request: a role's
values (stored with the service) go to the VM create, which checks them against the
catalog entry's declarations, and so does the entry version the role is pinned to
(``pinned``), so that no replica is ever made from another version.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from appliance.backends.vm.protocol import AgentUnsupported
from appliance.catalog.model import CatalogEntry, require_version
from appliance.catalog.values import check_values
from appliance.services.auth import Principal
from towerbox_core.api.services import RoleTemplate, ServiceDeployRequest, ServiceTemplate
from towerbox_core.api.vms import VmCreateRequest
from towerbox_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from towerbox_core.names import check_name
from towerbox_core.service_rules import check_template

SERVICES_DIRNAME = "services"


def services_dir(catalog_dir: Path) -> Path:
    return catalog_dir.parent / SERVICES_DIRNAME


def list_template_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted({p.stem for p in folder.iterdir() if p.suffix in (".toml", ".json")})


def load_template_file(folder: Path, name: str) -> ServiceTemplate:
    """images/services/<name>.toml (or .json), decoded and checked."""
    check_name("service template", name, field="template")
    for suffix in (".toml", ".json"):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            break
    else:
        known = ", ".join(list_template_files(folder)) or "none"
        raise NotFound(
            f"no service template {name!r} in {folder}; known: {known}",
            code="service_template_not_found",
            field="template",
        )
    try:
        raw = path.read_text()
        data: Any = tomllib.loads(raw) if suffix == ".toml" else json.loads(raw)
        template = msgspec.convert(data, ServiceTemplate)
    except (OSError, ValueError, msgspec.ValidationError) as err:
        raise InvalidInput(
            f"service template {path.name}: {err}", code="invalid_service_template"
        ) from err
    check_template(template)
    return template


def resolve_request(
    req: ServiceDeployRequest, principal: Principal, folder: Path
) -> tuple[ServiceTemplate, str]:
    """The template to deploy (with the request's name and values) and its tenant."""
    if (req.service is None) == (req.template is None):
        raise InvalidInput(
            "give either a template inline (service) or a template's name (template)",
            code="invalid_service_request",
            field="service",
        )
    template = req.service or load_template_file(folder, req.template or "")
    if req.name is not None:
        template = msgspec.structs.replace(template, name=req.name)
    roles = {r.name: r for r in template.roles}
    for role, values in req.values.items():
        if role not in roles:
            raise InvalidInput(
                f"values for {role!r}, which is not a role of the service",
                code="unknown_role",
                field=f"values.{role}",
            )
        roles[role] = msgspec.structs.replace(roles[role], values={**roles[role].values, **values})
    template = msgspec.structs.replace(template, roles=list(roles.values()))
    check_template(template)
    tenant = req.tenant or principal.tenant
    if tenant is None:
        raise InvalidInput(
            "a service belongs to a tenant: name one", code="tenant_required", field="tenant"
        )
    check_name("tenant", tenant, field="tenant")
    if not principal.is_infra_admin and tenant != principal.tenant:
        raise Forbidden(
            f"you can deploy services for tenant {principal.tenant!r} only",
            code="tenant_mismatch",
            field="tenant",
        )
    return template, tenant


@dataclass(frozen=True)
class NodeFacts:
    catalog: dict[str, CatalogEntry]
    gpu_profiles: Callable[[], frozenset[str]]
    vnet_exists: Callable[[str, str], bool]  # (tenant, name)
    # Why the VM backend cannot ping guest agents (the libvirt test driver); None: it can.
    agent_unsupported: str | None = None


def check_on_node(template: ServiceTemplate, tenant: str, facts: NodeFacts) -> None:
    """What only this node can say: entries, profiles, VNets, health kinds it can run."""
    for i, role in enumerate(template.roles):
        check_role_on_node(role, tenant, facts, f"roles[{i}]")


def pinned(template: ServiceTemplate, catalog: dict[str, CatalogEntry]) -> ServiceTemplate:
    """The template with each role's catalog entry version set to the one the node holds
    (checked by :func:`check_on_node` first): what its replicas are made from."""
    roles = [pin_role(r, catalog) for r in template.roles]
    return msgspec.structs.replace(template, roles=roles)


def pin_role(role: RoleTemplate, catalog: dict[str, CatalogEntry]) -> RoleTemplate:
    entry = catalog.get(role.catalog)
    if entry is None:  # a catalog document took it away since the role was checked
        raise Conflict(
            f"role {role.name}: catalog entry {role.catalog!r} was just removed from this "
            "node's catalog",
            code="unknown_catalog_entry",
            field="catalog",
        )
    return msgspec.structs.replace(role, version=entry.version)


def with_recorded_versions(
    template: ServiceTemplate, catalog: dict[str, CatalogEntry]
) -> ServiceTemplate:
    """The template as recorded, a role deployed before roles recorded their entry's
    version shown at the version its entry has now (what an update takes it to be)."""
    roles = [recorded_version(r, catalog) for r in template.roles]
    return msgspec.structs.replace(template, roles=roles)


def recorded_version(role: RoleTemplate, catalog: dict[str, CatalogEntry]) -> RoleTemplate:
    """``role``, at its entry's version now when it was deployed before roles recorded it."""
    entry = catalog.get(role.catalog)
    if role.version is not None or entry is None:
        return role
    return msgspec.structs.replace(role, version=entry.version)


def check_role_on_node(role: RoleTemplate, tenant: str, facts: NodeFacts, where: str) -> None:
    entry = facts.catalog.get(role.catalog)
    if entry is None:
        raise InvalidInput(
            f"role {role.name}: no catalog entry {role.catalog!r}; known: "
            f"{', '.join(sorted(facts.catalog)) or 'none'}",
            code="unknown_catalog_entry",
            field=f"{where}.catalog",
        )
    require_version(entry, role.version, f"{where}.version")
    if role.gpu is not None and role.gpu not in facts.gpu_profiles():
        raise InvalidInput(
            f"role {role.name}: no GPU of this node offers MIG profile {role.gpu!r}",
            code="unknown_gpu_profile",
            field=f"{where}.gpu",
        )
    for j, vnet in enumerate(role.vnets):
        if not facts.vnet_exists(tenant, vnet):
            raise InvalidInput(
                f"role {role.name}: tenant {tenant} has no VNet {vnet!r}",
                code="vnet_not_found",
                field=f"{where}.vnets[{j}]",
            )
    try:
        check_values(entry.cloud_init_values, role.values)
    except InvalidInput as err:
        # The same refusal a VM create gives, at the role's own field.
        named = err.extra.get("field")
        field = f"{where}.{named}" if named else f"{where}.values"
        raise InvalidInput(f"role {role.name}: {err.message}", code=err.code, field=field) from err
    health = role.health
    if health is not None and health.kind == "agent" and facts.agent_unsupported:
        raise AgentUnsupported(
            f"role {role.name}: this node cannot run guest-agent health checks "
            f"({facts.agent_unsupported}); use a serial marker or a TCP port",
            field=f"{where}.health.kind",
        )
    if (
        health is not None
        and health.kind == "serial"
        and not entry.default_spec.get("serial_log", True)
    ):
        raise InvalidInput(
            f"role {role.name}: catalog entry {role.catalog} keeps no serial console log, "
            "so a serial marker cannot be seen",
            code="invalid_health",
            field=f"{where}.health.kind",
        )


def replica_name(service: str, role: str, number: int) -> str:
    return f"{service}-{role}-{number}"


def replica_request(service: str, role: RoleTemplate, number: int, tenant: str) -> VmCreateRequest:
    """The VM create request for replica ``number`` of ``role``, started at once.

    The role's ``values`` go to the VM create, which checks them against the catalog
    entry's declarations (and keeps secrets out of the journal).
    """
    spec: dict[str, Any] = {"tenant": tenant}
    if role.spec.vcpus is not None:
        spec["vcpus"] = role.spec.vcpus
    if role.spec.memory_mib is not None:
        spec["memory_mib"] = role.spec.memory_mib
    if role.gpu is not None:
        spec["gpu"] = {"profile": role.gpu}
    if role.vnets:
        spec["nics"] = [{"kind": "vnet", "vnet": v} for v in role.vnets]
    return VmCreateRequest(
        name=replica_name(service, role.name, number),
        appliance=role.catalog,
        appliance_version=role.version,
        spec=spec,
        start=True,
        values=dict(role.values),
    )
