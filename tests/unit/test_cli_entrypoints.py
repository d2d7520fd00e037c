"""The CLI reads its command groups' entry points itself; it finds what
``importlib.metadata`` finds, and loads each."""

from __future__ import annotations

from importlib.metadata import entry_points as metadata_entry_points
from pathlib import Path

import pytest

from towerbox_cli.entrypoints import EntryPoint, entry_points
from towerbox_core.commands import ENTRY_POINT_GROUP, CommandGroup


def test_the_same_groups_as_importlib_metadata() -> None:
    ours = sorted((ep.name, ep.value) for ep in entry_points(ENTRY_POINT_GROUP))
    theirs = sorted((ep.name, ep.value) for ep in metadata_entry_points(group=ENTRY_POINT_GROUP))
    assert ours == theirs
    assert ("vm", "appliance.cli.vm:group") in ours


def test_an_entry_point_loads_its_object() -> None:
    group = EntryPoint("vm", "appliance.cli.vm:group").load()
    assert isinstance(group, CommandGroup) and group.name == "vm"


def test_the_first_distribution_of_a_name_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder, value in (("a", "first.mod:group"), ("b", "second.mod:group")):
        dist = tmp_path / folder / "demo_pkg-1.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "entry_points.txt").write_text(
            f"[console_scripts]\nx = y:z\n\n# a comment\n[demo.group]\none = {value}\n"
        )
    monkeypatch.setattr("sys.path", [str(tmp_path / "a"), str(tmp_path / "b")])
    assert entry_points("demo.group") == [EntryPoint("one", "first.mod:group")]
    assert entry_points("absent.group") == []
