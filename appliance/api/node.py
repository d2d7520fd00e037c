"""Node-level routes: health, host inventory, catalog, journal, metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Response

from appliance.api.deps import ApplianceDep, AuthedRequest, require_node_scope
from appliance.api.sync import SYNC_AGENT_OPEN, require_sync_scope
from appliance.backends.host.sysfs_inventory import inventory_to_dict
from appliance.catalog import image_status
from appliance.store import journal
from towerbox_core.errors import NotFound


@get("/healthz")
async def healthz(appliance: ApplianceDep) -> dict[str, Any]:
    snap = appliance.monitor.snapshot
    libvirt_line = f"libvirt: {appliance.backend.describe()}"
    return {
        "status": "ok",
        "node": appliance.cfg.node_name,
        "uptime_s": round(time.time() - appliance.started_at, 1),
        "backends": {
            "libvirt": {
                "uri": appliance.backend.uri,
                "simulated": appliance.backend.simulated,
                "virt_type": appliance.backend.virt_type,
                "summary": libvirt_line,
                "note": appliance.backend_note,
            },
            "gpu": {
                "summary": f"GPU: {appliance.gpus.line}",
                "simulated": appliance.gpus.backend.simulated,
            },
            # N6 backends are made when the first trunk of their kind is declared.
            "n6": {"summary": appliance.n6.describe() or ["N6: no trunk declared"]},
        },
        "summary": [libvirt_line],
        "last_sweep_at": snap.taken_at or None,
    }


class NodeController(Controller):
    path = "/api/v1"
    tags = ("node",)

    @get("/host", sync_to_thread=True)
    def host(self, request: AuthedRequest, appliance: ApplianceDep) -> dict[str, Any]:
        require_node_scope(request.user)
        return {
            "inventory": inventory_to_dict(appliance.host),
            "allocation": appliance.allocator.usage(),
        }

    @get("/catalog", sync_to_thread=True)
    def catalog(self, appliance: ApplianceDep) -> list[dict[str, Any]]:
        return [_entry(appliance, name) for name in sorted(appliance.catalog)]

    @get("/catalog/{name:str}", sync_to_thread=True)
    def catalog_entry(self, name: FromPath[str], appliance: ApplianceDep) -> dict[str, Any]:
        if name not in appliance.catalog:
            raise NotFound(f"no appliance {name!r} in the catalog", code="unknown_appliance")
        return _entry(appliance, name)

    @get("/journal", sync_to_thread=True, opt=SYNC_AGENT_OPEN)
    def journal_entries(
        self,
        request: AuthedRequest,
        after: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        kind: Annotated[str | None, QueryParameter(max_length=48)] = None,
    ) -> dict[str, Any]:
        require_sync_scope(request.user)
        # Positions first: an entry appended in between shows up in the next read.
        return {
            "head": journal.head(),
            "compacted_through": journal.compacted_through(),
            "acked_seq": journal.acked_seq(),
            "entries": journal.entries(after, limit, kind),
        }


def _entry(appliance: ApplianceDep, name: str) -> dict[str, Any]:
    entry = appliance.catalog[name]
    return {
        "name": entry.name,
        "description": entry.description,
        "version": entry.version,
        "role": entry.role,
        "image": {
            "kind": entry.image.kind,
            "file": entry.image.file,
            "initrd": entry.image.initrd,
            "url": entry.image.url,
            "sha256": entry.image.sha256,
        },
        "image_status": image_status(entry, Path(appliance.cfg.image_dir)),
        "default_spec": entry.default_spec,
    }


@get("/metrics")
async def metrics(appliance: ApplianceDep) -> Response[bytes]:
    return Response(appliance.metrics.render(), media_type="text/plain; version=0.0.4")
