"""``towerbox top`` against a real daemon process on the libvirt test driver: the
table an operator reads, ``--sort``, ``--json`` and a refused sort.

The command runs in this process through ``towerbox_cli.main``, with the command
groups that pyproject.toml declares (what an install of this checkout puts in its
entry points), so the declaration itself is tested."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.appliance import make_config
from tests.support.cli_in_process import declared_groups, run_cli
from tests.support.daemon import Daemon, running_daemon
from towerbox_cli.entrypoints import EntryPoint
from towerbox_core.commands import ENTRY_POINT_GROUP, EXIT_OK, EXIT_USAGE


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("top")
    with running_daemon(make_config(tmp), tmp) as d:
        d.wait_notify("READY=1")
        token = Path(d.env["TOWERBOX_STATE_DIR"], "cli-token").read_text().strip()
        with d.http(token) as api:
            for name in ("web", "cache"):
                made = api.post("/api/v1/vms", json={"name": name, "appliance": "demo"})
                assert made.status_code == 201, made.text
        try:
            yield d
        finally:
            with d.http(token) as api:
                for name in ("web", "cache"):
                    api.delete(f"/api/v1/vms/{name}")


Towerbox = Callable[..., tuple[int, str, str]]


@pytest.fixture
def towerbox(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Towerbox:
    for key, value in daemon.cli_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("towerbox_cli.parser.entry_points", declared_groups)
    assert EntryPoint("top", "appliance.cli.top:top") in declared_groups(ENTRY_POINT_GROUP)

    def run(*args: str) -> tuple[int, str, str]:
        return run_cli(args, capsys)

    return run


def test_top_prints_a_table_of_the_vms(towerbox: Towerbox) -> None:
    status, shown, _ = towerbox("top", "--sort", "name")
    assert status == EXIT_OK
    vms, slices = shown.split("\n\n")
    header, *rows = vms.splitlines()
    assert header.split() == [
        "NAME",
        "TENANT",
        "STATE",
        "CPU",
        "MEMORY",
        "RX/S",
        "TX/S",
        "READ/S",
        "WRITE/S",
        "SLICE",
        "GPU",
    ]
    assert [r.split() for r in rows] == [
        ["cache", "(node)", "shutoff", "0.0%", "0", "B", *["0", "B"] * 4, "-", "-"],
        ["web", "(node)", "shutoff", "0.0%", "0", "B", *["0", "B"] * 4, "-", "-"],
    ]
    # The node's simulated GPU, MIG off, held by no VM.
    header, gpu = slices.splitlines()
    assert header.split() == ["GPU", "SLICE", "ROLE", "OWNER", "TENANT", "BUSY", "MEMORY"]
    assert gpu.split()[1:5] == ["whole", "GPU", "-", "(free)"]


def test_top_json_is_the_apis_answer(towerbox: Towerbox) -> None:
    status, shown, _ = towerbox("top", "--sort", "memory", "--json")
    assert status == EXIT_OK
    answer = json.loads(shown)
    assert answer["sort"] == "memory"
    assert sorted(v["name"] for v in answer["vms"]) == ["cache", "web"]
    [gpu] = answer["slices"]  # the node's simulated GPU, whole
    assert (gpu["profile"], gpu["owner"], gpu["scope"]) == (None, None, "gpu")


def test_a_sort_it_does_not_know_is_a_usage_error(towerbox: Towerbox) -> None:
    status, shown, err = towerbox("top", "--sort", "heat")
    assert status == EXIT_USAGE
    assert shown == ""
    assert "invalid choice: 'heat'" in err
    assert "cpu, memory, net, disk, gpu, name" in err.replace("'", "")
