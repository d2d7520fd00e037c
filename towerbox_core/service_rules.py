"""The rules a service template follows wherever it is written, and its start order;
the ``services`` desired document checked with them (by the registry and the node).

Pure: names, counts, health fields, ``after`` references and cycles. Whether a
catalog entry, a VNet or a MIG profile exists, and whether the node can run a health
check, is the node's to say.
"""

from __future__ import annotations

from typing import Any

import msgspec

from towerbox_core.api.services import (
    MAX_REPLICAS,
    HealthCheck,
    RoleTemplate,
    ServicesDocument,
    ServiceTemplate,
)
from towerbox_core.errors import InvalidInput
from towerbox_core.names import check_name
from towerbox_core.tenant_rules import within

# A replica is named <service>-<role>-<n>; the whole must fit the name grammar's 63.
_REPLICA_SUFFIX = 3  # "-" and up to two digits of the replica's number
MAX_HEALTH_TIMEOUT_S = 3600.0
_MAX_MARKER = 200


def check_template(template: ServiceTemplate) -> None:
    """Refuse a template that breaks a rule, naming the field."""
    check_name("service", template.name, field="name")
    if not template.roles:
        raise InvalidInput("a service needs at least one role", code="no_roles", field="roles")
    seen: set[str] = set()
    for i, role in enumerate(template.roles):
        where = f"roles[{i}]"
        if role.name in seen:
            raise InvalidInput(
                f"role {role.name!r} appears twice", code="duplicate_role", field=f"{where}.name"
            )
        seen.add(role.name)
        check_role(template.name, role, where)
    for i, role in enumerate(template.roles):
        for j, dep in enumerate(role.after):
            if dep not in seen:
                raise InvalidInput(
                    f"role {role.name!r} starts after {dep!r}, which is not a role of "
                    f"{template.name}",
                    code="unknown_after_role",
                    field=f"roles[{i}].after[{j}]",
                )
            if dep == role.name:
                raise InvalidInput(
                    f"role {role.name!r} cannot start after itself",
                    code="service_cycle",
                    field=f"roles[{i}].after[{j}]",
                )
    start_waves(template)  # refuses a cycle


def check_entry_version(version: str, field: str) -> None:
    """A catalog entry's version as entries declare it: 1 to 64 printable characters."""
    if not 1 <= len(version) <= 64 or not version.isprintable():
        raise InvalidInput(
            "a catalog entry version is 1 to 64 printable characters",
            code="invalid_version",
            field=field,
        )


def check_role(service: str, role: RoleTemplate, where: str) -> None:
    longest = len(service) + 1 + len(role.name) + _REPLICA_SUFFIX
    check_name("role", role.name, max_len=63, field=f"{where}.name")
    if longest > 63:
        raise InvalidInput(
            f"replica names {service}-{role.name}-NN would pass 63 characters; "
            "shorten the service or role name",
            code="invalid_name",
            field=f"{where}.name",
        )
    check_name("catalog entry", role.catalog, field=f"{where}.catalog")
    if role.version is not None:
        check_entry_version(role.version, f"{where}.version")
    check_count(role.count, f"{where}.count")
    for key in role.values:
        check_name("value", key, field=f"{where}.values")
    if role.gpu is not None:
        check_name("MIG profile", role.gpu, field=f"{where}.gpu")
    for j, vnet in enumerate(role.vnets):
        check_name("VNet", vnet, field=f"{where}.vnets[{j}]")
    if role.spec.vcpus is not None and not 1 <= role.spec.vcpus <= 1024:
        raise InvalidInput(
            "spec.vcpus must be between 1 and 1024", code="invalid_spec", field=f"{where}.spec"
        )
    if role.spec.memory_mib is not None and not 32 <= role.spec.memory_mib <= 1 << 22:
        raise InvalidInput(
            "spec.memory_mib must be between 32 and 4194304",
            code="invalid_spec",
            field=f"{where}.spec",
        )
    if role.health is not None:
        check_health(role.health, f"{where}.health")


def check_count(count: int, field: str) -> None:
    if not 0 <= count <= MAX_REPLICAS:
        raise InvalidInput(
            f"count must be between 0 and {MAX_REPLICAS}, got {count}",
            code="invalid_count",
            field=field,
        )


def check_health(health: HealthCheck, where: str) -> None:
    if not 0 < health.timeout_s <= MAX_HEALTH_TIMEOUT_S:
        raise InvalidInput(
            f"timeout_s must be above 0 and at most {MAX_HEALTH_TIMEOUT_S:.0f}",
            code="invalid_health",
            field=f"{where}.timeout_s",
        )
    if health.kind == "serial":
        marker = health.marker
        if not marker or len(marker) > _MAX_MARKER or not marker.isprintable():
            raise InvalidInput(
                f"a serial health check needs a marker of 1 to {_MAX_MARKER} printable characters",
                code="invalid_health",
                field=f"{where}.marker",
            )
        if health.port is not None:
            raise InvalidInput(
                "a serial health check takes no port", code="invalid_health", field=f"{where}.port"
            )
    elif health.kind == "tcp":
        if health.port is None or not 1 <= health.port <= 65535:
            raise InvalidInput(
                "a tcp health check needs a port between 1 and 65535",
                code="invalid_health",
                field=f"{where}.port",
            )
        if health.marker is not None:
            raise InvalidInput(
                "a tcp health check takes no marker",
                code="invalid_health",
                field=f"{where}.marker",
            )
    elif health.marker is not None or health.port is not None:
        raise InvalidInput(
            "an agent health check takes neither marker nor port",
            code="invalid_health",
            field=where,
        )


def start_waves(template: ServiceTemplate) -> list[list[str]]:
    """Roles in start order: each wave's roles start once every earlier wave is healthy.

    Within a wave, roles keep the template's order. A cycle is refused with
    ``service_cycle`` naming the roles in it.
    """
    pending = {r.name: set(r.after) for r in template.roles}
    order = [r.name for r in template.roles]
    done: set[str] = set()
    waves: list[list[str]] = []
    while pending:
        wave = [name for name in order if name in pending and pending[name] <= done]
        if not wave:
            stuck = sorted(pending)
            raise InvalidInput(
                f"roles {', '.join(stuck)} wait for each other in a cycle",
                code="service_cycle",
                field="roles",
                roles=stuck,
            )
        for name in wave:
            del pending[name]
        done.update(wave)
        waves.append(wave)
    return waves


def stop_order(template: ServiceTemplate) -> list[str]:
    """Roles in the order an undeploy removes them: the start order reversed."""
    return [name for wave in reversed(start_waves(template)) for name in reversed(wave)]


def parse_services_document(document: Any) -> ServicesDocument:
    """A ``services`` document checked as far as anyone but the node can check it:
    shape, names, and each inline template's rules. Template files, catalog entries,
    VNets, quotas and room are the node's to check."""
    try:
        doc = msgspec.convert(_named_inline(document), ServicesDocument)
    except msgspec.ValidationError as err:
        raise InvalidInput(f"services document: {err}", code="invalid_desired_document") from err
    for name, entry in doc.services.items():
        where = f"services.{name}"
        check_name("service", name, field=where)
        check_name("tenant", entry.tenant, field=f"{where}.tenant")
        if (entry.service is None) == (entry.template is None):
            raise InvalidInput(
                "give either a template inline (service) or a template's name (template)",
                code="invalid_service_request",
                field=f"{where}.service",
            )
        if entry.template is not None:
            check_name("service template", entry.template, field=f"{where}.template")
        roles = None
        if entry.service is not None:
            with within(f"{where}.service"):
                check_template(entry.service)
            roles = {r.name for r in entry.service.roles}
        for role, values in entry.values.items():
            if roles is not None and role not in roles:
                raise InvalidInput(
                    f"values for {role!r}, which is not a role of service {name}",
                    code="unknown_role",
                    field=f"{where}.values.{role}",
                )
            for key in values:
                check_name("value", key, field=f"{where}.values.{role}")
    return doc


def _named_inline(document: Any) -> Any:
    """An inline template takes its name from its key: it may leave ``name`` out."""
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict):
        return document
    named = {}
    for key, entry in services.items():
        inline = entry.get("service") if isinstance(entry, dict) else None
        named[key] = (
            {**entry, "service": {**inline, "name": key}} if isinstance(inline, dict) else entry
        )
    return {**document, "services": named}
