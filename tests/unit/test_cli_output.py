"""How every command prints for a person, and which exit status an error gets."""

from __future__ import annotations

import pytest

from appliance.cli.vm import stats_summary
from towerbox_core.commands import (
    EXIT_AUTH,
    EXIT_REFUSED,
    EXIT_SERVER,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    as_json,
    exit_status,
    human,
)
from towerbox_core.errors import ConfigError, Conflict, InvalidInput, TowerboxError
from towerbox_core.sync_client import ApiError


def test_maps_are_lines_lists_of_objects_are_tables() -> None:
    shown = human(
        {
            "name": "du1",
            "ok": True,
            "gpu": None,
            "cpus": [2, 3],
            "nics": [],
            "boot": {"kernel": "vmlinuz"},
            "ops": [{"op": "create", "start": 0, "extra": {"x": 1}}, {"op": "destroy"}],
        }
    )
    assert shown.splitlines() == [
        "name: du1",
        "ok: yes",
        "gpu: -",
        "cpus: 2, 3",
        "nics: (none)",
        "boot:",
        "  kernel: vmlinuz",
        "ops:",
        "  OP       START",
        "  create   0",
        "  destroy  -",
    ]
    assert human([]) == "(none)"
    assert human(None) == ""


def test_json_keeps_non_ascii_readable() -> None:
    name = "H100 80GB \N{MULTIPLICATION SIGN}2"
    assert as_json({"backend": name}) == f'{{\n  "backend": "{name}"\n}}'


def test_vm_stats_is_a_short_summary() -> None:
    sample = {
        "state": "running",
        "cpu_pct": 12.345,
        "memory_kib": 131072,
        "rss_kib": 150000,
        "net_rx_bytes": 2048,
        "net_tx_bytes": 0,
        "disk_read_bytes": 3 * 1024 * 1024,
        "disk_write_bytes": 10,
    }
    history = [{**sample, "at": float(t), "cpu_pct": float(t)} for t in range(500)]
    shown = stats_summary({"name": "v1", "current": sample, "history": history})
    assert shown.splitlines() == [
        "v1: running",
        "CPU 12.3 % (avg 249.5, max 499.0 over 500 samples, 499 s)",
        "memory 128 MiB (QEMU RSS 146 MiB)",
        "network rx 2.0 KiB, tx 0 B; disk read 3.0 MiB, written 10 B",
    ]
    assert stats_summary({"name": "v1", "current": None, "history": []}) == "v1: no sample yet"


@pytest.mark.parametrize(
    ("err", "status"),
    [
        (ApiError(401, "invalid_token", "unknown or revoked token"), EXIT_AUTH),
        (ApiError(403, "forbidden", "infra-admin only"), EXIT_REFUSED),
        (ApiError(404, "vm_not_found", "no VM"), EXIT_REFUSED),
        (ApiError(409, "insufficient_cpus", "no cores"), EXIT_REFUSED),
        (ApiError(422, "invalid_name", "bad"), EXIT_REFUSED),
        (ApiError(500, "internal_error", "boom"), EXIT_SERVER),
        (ApiError(502, "http_502", "Bad Gateway"), EXIT_SERVER),
        (TowerboxError("no answer", code="appliance_unreachable"), EXIT_UNREACHABLE),
        (TowerboxError("no answer", code="registry_timeout"), EXIT_UNREACHABLE),
        (InvalidInput("bad JSON", code="invalid_json"), EXIT_USAGE),
        (ConfigError("no such file", code="config_not_found"), EXIT_USAGE),
        # Made here, not answered: its class's HTTP status is not the node's answer.
        (Conflict("VM is running", code="vm_running"), EXIT_REFUSED),
        (TowerboxError("declined", code="not_confirmed"), EXIT_REFUSED),
    ],
)
def test_each_error_has_its_exit_status(err: TowerboxError, status: int) -> None:
    assert exit_status(err) == status
