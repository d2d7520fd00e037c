"""Bad command-line JSON is an error with a code, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from towerbox_cli.main import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv",
    [
        ["vm", "create", "x", "--spec", "{bad"],
        ["gpu", "plan", "GPU-x", "{bad"],
        ["n6", "vnet-create", "{bad"],
    ],
)
def test_bad_json_arguments_are_refused_with_a_code(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOWERBOX_CONFIG", str(REPO / "etc" / "dev.toml"))
    # Nothing listens here: a request that got out would fail with another code.
    assert main(["--url", "http://127.0.0.1:9", *argv]) == 1
    assert "error [invalid_json]" in capsys.readouterr().err
