"""The CLI's command groups as this checkout's pyproject.toml declares them, for tests
that run ``towerbox_cli.main`` in process: the installed entry points may be another
checkout's."""

from __future__ import annotations

import tomllib

from tests.support.appliance import REPO
from towerbox_cli.entrypoints import EntryPoint


def declared_groups(group: str) -> list[EntryPoint]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [EntryPoint(k, v) for k, v in project["entry-points"].get(group, {}).items()]
