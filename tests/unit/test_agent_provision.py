"""The agent's zero-touch configuration: which identity it proves, what it refuses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_agent.config import AgentConfig, load_agent_config
from edge_agent.provision import hardware_id, provision, wants_provisioning
from towerbox_core.errors import ConfigError
from towerbox_core.secret_files import write_secret_file


def test_the_identity_is_configured_or_the_first_line_of_its_file(tmp_path: Path) -> None:
    serial = tmp_path / "product_serial"
    serial.write_text("SN-CZ2291XK7Q\nsecond line\n")
    assert hardware_id(AgentConfig(hardware_id_file=str(serial))) == "SN-CZ2291XK7Q"
    assert hardware_id(AgentConfig(hardware_id="abc", hardware_id_file=str(serial))) == "abc"
    serial.write_text("\n")
    with pytest.raises(ConfigError) as empty:
        hardware_id(AgentConfig(hardware_id_file=str(serial)))
    assert empty.value.code == "no_hardware_id"
    with pytest.raises(ConfigError) as missing:
        hardware_id(AgentConfig(hardware_id_file=str(tmp_path / "absent")))
    assert missing.value.code == "no_hardware_id"


def test_provisioning_only_when_not_enrolled_and_a_credential_is_set(tmp_path: Path) -> None:
    cfg = AgentConfig(state_dir=str(tmp_path), provisioning_token_file=str(tmp_path / "cred"))
    assert wants_provisioning(cfg)
    assert not wants_provisioning(AgentConfig(state_dir=str(tmp_path)))
    cfg.state_file.write_text("{}")
    assert not wants_provisioning(cfg)


def test_configuration_errors_are_refused_before_any_request(tmp_path: Path) -> None:
    credential = tmp_path / "cred"
    credential.write_text("tbp_x\n")
    credential.chmod(0o644)
    base = {"state_dir": str(tmp_path), "provisioning_token_file": str(credential)}
    stop = asyncio.Event()
    cases = [
        (AgentConfig(**base), "no_registry_url"),
        (AgentConfig(**base, registry_url="http://127.0.0.1:9"), "insecure_token_file"),
        (
            AgentConfig(
                **{**base, "provisioning_token_file": str(tmp_path / "none")},
                registry_url="http://127.0.0.1:9",
            ),
            "no_provisioning_credential",
        ),
    ]
    for cfg, code in cases:
        with pytest.raises(ConfigError) as err:
            asyncio.run(provision(cfg, stop))
        assert err.value.code == code
    with pytest.raises(ConfigError):
        load_agent_config(tmp_path / "absent.toml", {"TOWERBOX_AGENT_REGISTRY_URL": "ftp://x"})


def test_a_stop_ends_the_retries_while_the_registry_is_unreachable(tmp_path: Path) -> None:
    credential = tmp_path / "cred"
    write_secret_file(credential, "tbp_x\n")
    cfg = AgentConfig(
        state_dir=str(tmp_path / "state"),
        provisioning_token_file=str(credential),
        registry_url="http://127.0.0.1:9",  # nothing listens on the discard port
        hardware_id="abc",
        backoff_base_s=0.05,
        backoff_cap_s=0.1,
    )

    async def run() -> object:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        return await provision(cfg, stop)

    assert asyncio.run(run()) is None
    assert not cfg.state_file.exists()
