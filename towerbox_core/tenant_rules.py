"""The rules a tenant's quotas, grants and labels follow wherever they are written.

Pure and shared: the appliance checks API bodies and ``tenants`` documents with them,
and the registry checks a ``tenants`` document with them before it publishes one. What
only the node can say (a MIG profile it knows, a PCI device or SR-IOV PF that exists)
stays with the appliance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from towerbox_core.api.tenants import UNLIMITED, Grants, Quotas, TenantsDocument
from towerbox_core.errors import InvalidInput
from towerbox_core.names import check_labels, check_name

# Bounds past which a value is a typo, not a plan.
_MAX = {
    "vms": 100_000,
    "vcpus": 10_000_000,
    "memory_mib": 1 << 32,  # 4 PiB
    "disk_gib": 1 << 32,
    "gpu_slices": 100_000,
    "gpu_compute_slices": 1_000_000,
    "whole_gpus": 100_000,
    "vnets": 100_000,
    "process_claims": 100_000,
    "pinned_cores": 1_000_000,
    "hugepages": 1 << 32,  # MiB
    "sriov_pfs": 100_000,  # VFs
}
HUGEPAGE_SIZES = ("2M", "1G")
_PLAIN_QUOTAS = (
    "vms",
    "vcpus",
    "memory_mib",
    "disk_gib",
    "gpu_compute_slices",
    "whole_gpus",
    "vnets",
    "process_claims",
)


def check_count(value: int, name: str, kind: str = "quota") -> None:
    bound = _MAX[name.split(".", maxsplit=1)[0]]
    if value != UNLIMITED and not 0 <= value <= bound:
        raise InvalidInput(
            f"{name} must be -1 (unlimited) or between 0 and {bound}, got {value}",
            code=f"invalid_{kind}",
            field=name,
        )


def check_quota_counts(quotas: Quotas) -> None:
    """Every count in bounds; the profile names are the node's to check."""
    for name in _PLAIN_QUOTAS:
        check_count(getattr(quotas, name), name)
    for profile, n in quotas.gpu_slices.items():
        check_count(n, f"gpu_slices.{profile}")


def check_grant_counts(grants: Grants) -> None:
    """Shapes and bounds only; whether PFs and devices exist is the host's to say."""
    check_count(grants.pinned_cores, "pinned_cores", "grant")
    for size, mib in grants.hugepages.items():
        if size not in HUGEPAGE_SIZES:
            raise InvalidInput(
                f"hugepage size {size!r} is not one of {', '.join(HUGEPAGE_SIZES)}",
                code="invalid_grant",
                field=f"hugepages.{size}",
            )
        check_count(mib, f"hugepages.{size}", "grant")
    for pf, n in grants.sriov_pfs.items():
        check_count(n, f"sriov_pfs.{pf}", "grant")


@contextmanager
def within(prefix: str) -> Iterator[None]:
    """Name a refused field by its place in a document: ``tenants.acme.quotas.vcpus``."""
    try:
        yield
    except InvalidInput as err:
        field = err.extra.get("field")
        err.extra["field"] = f"{prefix}.{field}" if field else prefix
        raise


def parse_tenants_document(document: Any) -> TenantsDocument:
    """A ``tenants`` document checked as far as anyone but the node can check it."""
    try:
        doc = msgspec.convert(document, TenantsDocument)
    except msgspec.ValidationError as err:
        raise InvalidInput(f"tenants document: {err}", code="invalid_desired_document") from err
    for name, entry in doc.tenants.items():
        where = f"tenants.{name}"
        check_name("tenant", name, field=where)
        check_labels(entry.labels, f"{where}.labels")
        if entry.quotas is not None:
            with within(f"{where}.quotas"):
                check_quota_counts(entry.quotas)
        with within(f"{where}.grants"):
            check_grant_counts(entry.grants)
        for i, vnet in enumerate(entry.vnets):
            if vnet.get("tenant", name) != name:
                raise InvalidInput(
                    f"VNet {vnet.get('name')!r} under tenant {name} names tenant "
                    f"{vnet.get('tenant')!r}",
                    code="vnet_tenant_mismatch",
                    field=f"{where}.vnets[{i}].tenant",
                )
    return doc
