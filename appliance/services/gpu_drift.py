"""How far a GPU is from its committed MIG layout, as the monitor's last sweep saw it.

The one answer the alert rules (``health_readings``) and the /metrics families
(``metrics_snapshot``) both give, from the snapshot's samples and the committed
layouts in the store: neither calls the GPU backend for it. It means what the GPU
view (``GpuLayoutService.list_gpus``) means by drift: with MIG off, a committed layout
is a change not yet applied, not a drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from appliance.domain.gpu.effects import layout_drift
from appliance.services.gpu_telemetry import GpuSample
from appliance.store.models import GpuLayout
from towerbox_core.api.gpus import Instance, Layout


@dataclass(frozen=True)
class LayoutDrift:
    drift: tuple[str, ...]  # one line per instance that differs (``layout_drift``'s words)
    missing: int  # committed instances the GPU does not have


NO_DRIFT = LayoutDrift((), 0)


def committed_layouts() -> dict[str, Layout]:
    """Each GPU's committed layout by UUID, from the store (one query)."""
    rows = GpuLayout.select(GpuLayout.gpu_uuid, GpuLayout.layout).tuples()
    return {gpu: msgspec.json.decode(layout, type=Layout) for gpu, layout in rows.iterator()}


def sample_drift(sample: GpuSample, committed: Layout | None) -> LayoutDrift | None:
    """The GPU's drift from ``committed``; None when this sweep cannot tell (MIG is
    on but where its instances sit was not read), so the caller keeps what it last
    told rather than report a drift the GPU may not have."""
    if not sample.placements_read:
        return None
    if committed is None or not sample.telemetry.mig_enabled:
        return NO_DRIFT
    present = set(sample.placements.values())
    current = Layout(
        gpu_model=committed.gpu_model,
        instances=tuple(Instance(profile=p, start=s) for p, s in sorted(present)),
    )
    missing = len(committed.by_placement().keys() - present)
    return LayoutDrift(tuple(layout_drift(committed, current)), missing)
