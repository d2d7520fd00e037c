"""towerbox_core.config: file values and environment strings typed by the defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from towerbox_core.config import build
from towerbox_core.errors import ConfigError


@dataclass(frozen=True)
class Api:
    port: int = 8443
    timeout_s: float = 60.0
    verbose: bool = False


@dataclass(frozen=True)
class Node:
    name: str = "towerbox"
    keep_entries: int = 200
    layouts: dict[str, Any] = field(default_factory=dict)
    api: Api = field(default_factory=Api)


def _node(raw: dict[str, Any] | None = None, **env: str) -> Node:
    node: Node = build(Node, raw or {}, env, "TB_", "node.toml", {"api": Api})
    return node


def test_environment_strings_become_typed_values() -> None:
    node = _node(
        {"api": {"port": 9000}},
        TB_API_PORT=" 9443 ",
        TB_API_TIMEOUT_S="2.5",
        TB_API_VERBOSE="true",
        TB_KEEP_ENTRIES="200_000",
        TB_NAME="site-1",
    )
    assert node == Node(name="site-1", keep_entries=200_000, api=Api(9443, 2.5, True))


def test_file_values_keep_their_old_leniency() -> None:
    node = _node({"keep_entries": "300", "api": {"timeout_s": 5, "verbose": "yes"}})
    assert (node.keep_entries, node.api.timeout_s, node.api.verbose) == (300, 5.0, True)
    assert isinstance(node.api.timeout_s, float)


@pytest.mark.parametrize("word", ["1", "true", "True", "yes", "YES", "on", " on "])
def test_true_words(word: str) -> None:
    assert _node(TB_API_VERBOSE=word).api.verbose is True


@pytest.mark.parametrize("word", ["0", "false", "no", "off", "OFF", ""])
def test_false_words(word: str) -> None:
    assert _node({"api": {"verbose": True}}, TB_API_VERBOSE=word).api.verbose is False


def test_a_bad_boolean_is_refused_not_read_as_false() -> None:
    # Until msgspec did the conversion any other word silently meant false.
    with pytest.raises(ConfigError) as err:
        _node(TB_API_VERBOSE="maybe")
    assert err.value.extra["field"] == "api.verbose"
    assert "api.verbose must be bool (true/false, yes/no, on/off or 1/0), got 'maybe'" in str(
        err.value
    )
    assert "(from TB_API_VERBOSE)" in str(err.value)


@pytest.mark.parametrize(
    ("raw", "env", "message"),
    [
        ({}, {"TB_API_PORT": "many"}, "api.port must be int, got 'many' (from TB_API_PORT)"),
        ({}, {"TB_API_PORT": "8443.5"}, "api.port must be int, got '8443.5'"),
        ({}, {"TB_KEEP_ENTRIES": "1__0"}, "keep_entries must be int, got '1__0'"),
        ({"api": {"port": True}}, {}, "node.toml: api.port must be int, got True"),
        ({"api": {"port": 8443.5}}, {}, "api.port must be int, got 8443.5"),
        ({"api": {"timeout_s": False}}, {}, "api.timeout_s must be float, got False"),
        ({"name": 5}, {}, "name must be str, got 5"),
        ({"layouts": 3}, {}, "layouts must be dict, got 3"),
    ],
)
def test_bad_values_name_the_key_and_where_it_came_from(
    raw: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _node(raw, **env)
    assert message in str(err.value)


def test_unknown_keys_are_all_named() -> None:
    with pytest.raises(ConfigError, match=r"node.toml: unknown keys \['nmae', 'prot'\]"):
        _node({"prot": 1, "nmae": "x"})
    with pytest.raises(ConfigError, match=r"unknown keys in \[api\]: \['prot'\]"):
        _node({"api": {"prot": 1}})


def test_a_table_from_the_environment_is_json() -> None:
    node = _node({"layouts": {"a": {}}}, TB_LAYOUTS='{"offpeak": {"counts": {"1g.10gb": 4}}}')
    assert node.layouts == {"offpeak": {"counts": {"1g.10gb": 4}}}
    with pytest.raises(ConfigError, match=r"layouts must be a JSON object \(from TB_LAYOUTS\)"):
        _node(TB_LAYOUTS='["offpeak"]')
    with pytest.raises(ConfigError, match=r"layouts must be a JSON object .*malformed"):
        _node(TB_LAYOUTS="{not json")
