"""Running ``towerbox_cli.main`` in the test's process, with the command groups this
checkout's pyproject.toml declares (the installed entry points may be another
checkout's)."""

from __future__ import annotations

import tomllib

import pytest

from tests.support.appliance import REPO
from towerbox_cli.entrypoints import EntryPoint
from towerbox_cli.main import main


def declared_groups(group: str) -> list[EntryPoint]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [EntryPoint(k, v) for k, v in project["entry-points"].get(group, {}).items()]


def run_cli(args: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """One command line: its exit status, standard output and standard error."""
    try:
        status = main(list(args))
    except SystemExit as exit_:  # argparse refuses a bad line by exiting
        status = int(exit_.code or 0)
    shown = capsys.readouterr()
    return status, shown.out, shown.err
