"""A catalog entry as the node holds it, and the VM spec an entry makes."""

from __future__ import annotations

import copy
from typing import Any, Literal

import msgspec

from appliance.catalog.values import ValueDecl
from appliance.domain.vm_spec import Role, VmSpec, parse_vm_spec
from towerbox_core.errors import Conflict


class ImageRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a VM of the appliance boots from; files are in the node's image folder."""

    kind: Literal["kernel", "disk"]
    file: str  # disk: the base image; kernel: the kernel
    initrd: str | None = None  # kernel only
    url: str | None = None  # where ``file`` comes from
    sha256: str | None = None  # of ``file``; required with ``url``


ArtifactKind = Literal["image", "kernel", "initrd", "model"]


class ArtifactRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A file an entry needs in the node's image folder, fetched from ``url``."""

    name: str  # the file name in the image folder
    url: str | None  # None: put there by the operator, never fetched
    sha256: str
    kind: ArtifactKind
    size: int | None = None  # bytes; None when the catalog does not say


class CatalogEntry(msgspec.Struct, frozen=True):
    name: str
    description: str
    version: str
    role: Role
    image: ImageRef
    default_spec: dict[str, Any]  # VmSpec fields except name, role and appliance
    cloud_init_template: str | None
    source_file: str
    # Values a create may set for the template ([cloud_init.values.<name>]).
    cloud_init_values: dict[str, ValueDecl] = {}
    # A model bundle in the image folder, attached read-only as a second disk.
    model_file: str | None = None
    artifacts: tuple[ArtifactRef, ...] = ()  # the ``[[artifacts]]`` tables


def entry_artifacts(entry: CatalogEntry) -> tuple[ArtifactRef, ...]:
    """Every artifact the entry needs: an ``[image]`` with a url, then ``[[artifacts]]``."""
    image = entry.image
    if image.url is None or image.sha256 is None:
        return entry.artifacts
    kind: ArtifactKind = "image" if image.kind == "disk" else "kernel"
    from_image = ArtifactRef(name=image.file, url=image.url, sha256=image.sha256, kind=kind)
    return (from_image, *(a for a in entry.artifacts if a.name != image.file))


def entry_document(entry: CatalogEntry) -> dict[str, Any]:
    """An entry as the document (or file) that describes it."""
    doc: dict[str, Any] = {
        "name": entry.name,
        "description": entry.description,
        "version": entry.version,
        "role": entry.role.value,
        "image": msgspec.to_builtins(entry.image),
        "spec": entry.default_spec,
    }
    if entry.artifacts:
        doc["artifacts"] = [
            {k: v for k, v in msgspec.to_builtins(a).items() if v is not None}
            for a in entry.artifacts
        ]
    if entry.cloud_init_template is not None:
        doc["cloud_init"] = {"template": entry.cloud_init_template}
        if entry.cloud_init_values:
            doc["cloud_init"]["values"] = msgspec.to_builtins(entry.cloud_init_values)
    if entry.model_file is not None:
        doc["model"] = {"file": entry.model_file}
    return doc


def require_version(entry: CatalogEntry, version: str | None, field: str) -> None:
    """Refuse when ``version`` is given and the node's entry has another: a caller that
    pinned a version gets it, or a 409 saying which one the node holds."""
    if version is not None and version != entry.version:
        raise Conflict(
            f"catalog entry {entry.name} is at version {entry.version} on this node, not {version}",
            code="catalog_version_unavailable",
            field=field,
            entry=entry.name,
            held=entry.version,
            wanted=version,
        )


def spec_for(entry: CatalogEntry, name: str, overrides: dict[str, Any]) -> VmSpec:
    """The spec of a VM named ``name`` made from ``entry``, with ``overrides`` on top.

    Tables merge key by key (``{"cpu": {"isolated": false}}`` keeps the policy);
    lists and plain values replace. The image fills ``boot`` (kernel kind) or the
    first disk (disk kind, unless ``overrides`` give ``disks``), the model file
    ``model_disk`` (an override may name another). ``appliance`` and
    ``role`` come from the entry unless overridden; the name is always ``name``.
    """
    base = copy.deepcopy(entry.default_spec)
    image = entry.image
    if image.kind == "kernel":
        boot = base.get("boot")
        boot = dict(boot) if isinstance(boot, dict) else {}
        boot["kernel"] = image.file
        if image.initrd is not None:
            boot["initrd"] = image.initrd
        base["boot"] = boot
    elif "disks" not in overrides:
        extra = base.get("disks")
        base["disks"] = [{"image": image.file}, *(extra if isinstance(extra, list) else [])]
    if entry.model_file is not None:
        base["model_disk"] = entry.model_file
    base["appliance"] = entry.name
    base["role"] = entry.role.value
    merged = _merge(base, overrides)
    merged["name"] = name
    return parse_vm_spec(merged)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = _merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
