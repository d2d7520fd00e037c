"""The gpu_layout table, and the migration that moves older Meta rows into it."""

from __future__ import annotations

from pathlib import Path

import msgspec

from appliance.domain.gpu.layout import Instance, Layout, MigRole
from appliance.store.db import SCHEMA_VERSION, open_database
from appliance.store.models import GpuLayout, Meta

LAYOUT = Layout("H100-80GB", (Instance("3g.40gb", 4, MigRole.VRAN, "du1"),))


def test_v1_meta_rows_move_to_the_gpu_layout_table(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = open_database(path)
    # Back to what a schema-1 database held: layouts as Meta rows, no table.
    db.drop_tables([GpuLayout])
    Meta.create(key="gpu_layout:GPU-1", value=msgspec.json.encode(LAYOUT).decode())
    db.pragma("user_version", 1)
    db.close()

    db = open_database(path)
    try:
        assert db.pragma("user_version") == SCHEMA_VERSION
        row = GpuLayout.get_by_id("GPU-1")
        assert row.gpu_model == "H100-80GB"
        assert msgspec.json.decode(row.layout, type=Layout) == LAYOUT
        assert Meta.get_or_none(Meta.key == "gpu_layout:GPU-1") is None
    finally:
        db.close()
