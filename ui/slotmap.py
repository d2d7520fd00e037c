"""A MIG layout as blocks on two rulers: the core's, shared with the registry UI."""

from __future__ import annotations

from towerbox_core.slotmap import (
    Block,
    Geometry,
    compute_blocks,
    geometry,
    memory_blocks,
    plan_lines,
    target_instances,
)

__all__ = [
    "Block",
    "Geometry",
    "compute_blocks",
    "geometry",
    "memory_blocks",
    "plan_lines",
    "target_instances",
]
