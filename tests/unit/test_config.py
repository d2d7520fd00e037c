from __future__ import annotations

import socket
from pathlib import Path

import pytest

from appliance.config import parse_cpu_list
from appliance.config_load import load_config
from towerbox_core.errors import ConfigError


def test_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "absent.toml", {})
    assert cfg.api.port == 8443
    assert (cfg.api.max_body_bytes, cfg.api.rate_per_s, cfg.api.rate_burst) == (1 << 20, 50, 200)
    assert cfg.libvirt.uri == "auto"
    assert cfg.db_path == Path("/var/lib/towerbox/appliance.db")
    assert (cfg.resolved_catalog_dir() / "demo.toml").exists()


def test_file_then_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text('node_name = "site-1"\n[api]\nport = 9000\n[jobs]\nmonitor_interval_s = 2\n')
    cfg = load_config(path, {"TOWERBOX_API_PORT": "9100", "TOWERBOX_NODE_NAME": "site-2"})
    assert cfg.api.port == 9100
    assert cfg.node_name == "site-2"
    assert cfg.jobs.monitor_interval_s == 2.0


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(tmp_path / "absent.toml", {"TOWERBOX_STATE_DIR": "var/state"})
    assert cfg.state_dir == str(tmp_path / "var" / "state")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus = 1\n", "unknown keys"),
        ("[api]\nprot = 1\n", "unknown keys in [api]"),
        ('[api]\nport = "many"\n', "api.port must be int"),
        ("[api]\nport = true\n", "api.port must be int"),
        ("api = 3\n", "must be a table"),
        ("[api\n", "cannot read config"),
        ("[api]\nrate_per_s = 0\n", "[api] max_body_bytes, rate_per_s"),
        ("[api]\nmax_body_bytes = 0\n", "[api] max_body_bytes, rate_per_s"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(path, {})


def test_cpu_lists() -> None:
    assert parse_cpu_list("0-2,8,10-11") == {0, 1, 2, 8, 10, 11}
    assert parse_cpu_list("") == frozenset()
    with pytest.raises(ConfigError):
        parse_cpu_list("3-1")
    with pytest.raises(ConfigError):
        parse_cpu_list("a")


def _socket_path(folder: Path, size: int) -> Path:
    """A path of exactly ``size`` bytes in ``folder``."""
    name = "s" * (size - len(str(folder)) - 1)
    return folder / name


def test_a_unix_socket_path_is_held_to_what_the_kernel_binds(tmp_path: Path) -> None:
    longest, too_long = _socket_path(tmp_path, 107), _socket_path(tmp_path, 108)
    # The limit is the kernel's own: the longest path binds, one byte more does not.
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(longest))
    with socket.socket(socket.AF_UNIX) as s, pytest.raises(OSError, match="too long"):
        s.bind(str(too_long))
    assert load_config(tmp_path / "absent.toml", {"TOWERBOX_API_SOCKET": str(longest)})
    for key, env in (
        ("api.socket", "TOWERBOX_API_SOCKET"),
        ("artifacts.registry_relay", "TOWERBOX_ARTIFACTS_REGISTRY_RELAY"),
    ):
        with pytest.raises(ConfigError, match=r"108 bytes long.*at most 107") as err:
            load_config(tmp_path / "absent.toml", {env: str(too_long)})
        assert (err.value.code, err.value.extra["field"]) == ("socket_path_too_long", key)
