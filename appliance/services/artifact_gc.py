"""Garbage collection of the image folder: files nothing needs any more.

A visible file is removed only when no catalog entry names it (as an artifact, an
image file, an initrd or a model file), no VM uses it (a base disk, a kernel, an initrd) and the
keep list does not match it. Quarantined files and partial files of artifacts no
one needs are garbage too; a partial file of a needed artifact is kept for resume.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping

from appliance.catalog.model import CatalogEntry
from appliance.services.artifacts import ArtifactService
from appliance.services.auth import Principal
from appliance.store import journal
from towerbox_core.api.artifacts import GcItem, GcRequest, GcResult

log = logging.getLogger(__name__)


def catalog_files(catalog: Mapping[str, CatalogEntry]) -> set[str]:
    """Every file name in the image folder that a catalog entry names."""
    names: set[str] = set()
    for entry in catalog.values():
        names.add(entry.image.file)
        if entry.image.initrd is not None:
            names.add(entry.image.initrd)
        if entry.model_file is not None:
            names.add(entry.model_file)
        names.update(a.name for a in entry.artifacts)
    return names


def collect(service: ArtifactService, principal: Principal, request: GcRequest) -> GcResult:
    principal.require_infra_admin()
    store = service.store
    in_use = catalog_files(service.catalog) | set(service.vm_files())
    active = service.active_names()

    def kept(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in request.keep)

    removable: list[GcItem] = []
    saved: list[str] = []
    for name, size in sorted(store.files().items()):
        if name in in_use:
            continue
        if kept(name):
            saved.append(name)
        else:
            removable.append(GcItem(path=name, bytes=size, why="unused"))
    for name, size in sorted(store.quarantined().items()):
        removable.append(
            GcItem(path=f"{store.quarantine_dir.name}/{name}", bytes=size, why="quarantined")
        )
    for name, size in sorted(store.partials().items()):
        if name not in in_use and name not in active and not kept(name):
            removable.append(
                GcItem(path=f"{store.partial_dir.name}/{name}", bytes=size, why="stale partial")
            )
    if request.only is not None:
        wanted = set(request.only)
        removable = [i for i in removable if i.path in wanted]
    if not request.dry_run:
        for item in removable:
            _remove(service, item)
    return GcResult(
        dry_run=request.dry_run,
        removed=removable,
        kept=saved,
        freed_bytes=sum(i.bytes for i in removable),
    )


def _remove(service: ArtifactService, item: GcItem) -> None:
    path = service.store.root / item.path
    try:
        path.unlink()
    except FileNotFoundError:
        return
    log.info("artifact gc: removed %s (%s, %d bytes)", item.path, item.why, item.bytes)
    with journal.write_transaction():
        journal.append(
            "artifact.removed", "artifact", item.path, {"bytes": item.bytes, "why": item.why}
        )
