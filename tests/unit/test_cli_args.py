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
    assert main(["--url", "http://127.0.0.1:9", *argv]) == 2  # a usage error
    assert "error [invalid_json]" in capsys.readouterr().err


def test_value_words_become_the_requests_values() -> None:
    from appliance.cli.values import value_words

    assert value_words(["model=llama-3-8b", "replicas=2", "debug=true", 'keys=["a", "b"]']) == {
        "model": "llama-3-8b",
        "replicas": 2,
        "debug": True,
        "keys": ["a", "b"],
    }
    assert value_words(["note={not json", "empty="]) == {"note": "{not json", "empty": ""}


@pytest.mark.parametrize("words", [["model"], ["=x"], ["a=1", "a=2"]])
def test_bad_value_words_are_refused_with_a_code(
    words: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOWERBOX_CONFIG", str(REPO / "etc" / "dev.toml"))
    argv = ["vm", "create", "x", "--appliance", "demo"]
    for word in words:
        argv += ["--value", word]
    assert main(["--url", "http://127.0.0.1:9", *argv]) == 2  # a usage error
    assert "error [invalid_argument]" in capsys.readouterr().err
