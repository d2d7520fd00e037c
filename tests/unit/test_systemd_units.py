"""The units pass `systemd-analyze verify` with no complaint at all."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "systemd").glob("*.service"))
INSTALLED_BIN = "/opt/towerbox/.venv/bin/towerbox"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _verify(unit_text: str, name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # verify checks that ExecStart exists: point it at this checkout's venv.
    path = tmp_path / name
    path.write_text(unit_text.replace(INSTALLED_BIN, str(REPO / ".venv" / "bin" / "towerbox")))
    return subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_verifies_cleanly(unit: Path, tmp_path: Path) -> None:
    result = _verify(unit.read_text(), unit.name, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    text = (REPO / "systemd" / "towerbox-appliance.service").read_text()
    result = _verify(text.replace("Type=notify", "Type=notifyy"), "bad.service", tmp_path)
    assert "notifyy" in result.stderr


def test_appliance_unit_essentials() -> None:
    text = (REPO / "systemd" / "towerbox-appliance.service").read_text()
    for line in (
        "Type=notify",
        "Restart=on-failure",
        "After=libvirtd.service",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ):
        assert line in text
    assert "WatchdogSec=" in text
