"""Which way an artifact's bytes come: its URL, or the fleet registry through the
agent's relay, refused with artifact_origin_unavailable when the node has none."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from appliance.catalog.model import ArtifactRef
from appliance.services.artifact_origin import UNAVAILABLE, ArtifactOrigins
from appliance.services.sync import SyncStatusBoard
from towerbox_core.errors import TowerboxError
from towerbox_core.wire import AgentStatus

SHA = "cd" * 32
BLOB = ArtifactRef("model.bin", f"registry:{SHA}", SHA, "model", 10)
PLAIN = ArtifactRef("model.bin", "https://mirror.example/model.bin", SHA, "model", 10)


def _report(board: SyncStatusBoard) -> None:
    board.put(AgentStatus("online", "https://registry.example", "site-a", 0, 0, heartbeat_s=5))


def _refusal(origins: ArtifactOrigins) -> str:
    with pytest.raises(TowerboxError) as err:
        origins.wanted(BLOB)
    assert err.value.code == UNAVAILABLE and err.value.status == 503
    return err.value.message


def test_a_url_is_fetched_as_it_is_without_any_registry() -> None:
    want = ArtifactOrigins("", SyncStatusBoard()).wanted(PLAIN)
    assert (want.url, want.socket) == (PLAIN.url, None)


def test_a_registry_blob_needs_an_enrolled_running_agent_and_its_relay(tmp_path: Path) -> None:
    board = SyncStatusBoard()
    path = tmp_path / "blobs.sock"
    origins = ArtifactOrigins(str(path), board)
    assert "never reported" in _refusal(origins)
    _report(board)
    assert "not there" in _refusal(origins)
    with socket.socket(socket.AF_UNIX) as relay:
        relay.bind(str(path))
        want = origins.wanted(BLOB)
    assert want.url == f"http://towerbox-agent/blobs/{SHA}" and want.socket == str(path)
    assert (want.sha256, want.size) == (SHA, 10)
    assert "registry_relay is empty" in _refusal(ArtifactOrigins("", board))


def test_an_agent_that_stopped_reporting_is_no_origin(tmp_path: Path) -> None:
    board = SyncStatusBoard()
    _report(board)
    board._received_mono -= 60  # three 5 s intervals and more without a report
    assert "not running" in _refusal(ArtifactOrigins(str(tmp_path / "blobs.sock"), board))
