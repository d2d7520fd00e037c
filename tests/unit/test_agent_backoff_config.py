"""The agent's backoff schedule, configuration and enrollment file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge_agent.backoff import Backoff
from edge_agent.config import load_agent_config
from edge_agent.registry_link import encode_batch
from edge_agent.state import Enrollment, load_enrollment, read_token, save_enrollment
from towerbox_core.errors import ConfigError
from towerbox_core.wire import MAX_BATCH_BYTES, WireEntry


def test_full_jitter_stays_under_a_doubling_capped_ceiling() -> None:
    backoff = Backoff(1.0, 60.0, random.Random(42))
    ceilings = []
    for _ in range(10):
        ceiling = backoff.ceiling()
        delay = backoff.next_delay()
        assert 0 <= delay <= ceiling
        ceilings.append(ceiling)
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    backoff.reset()
    assert backoff.ceiling() == 1.0


def test_schedule_is_reproducible_with_a_seed_and_jittered() -> None:
    first = Backoff(0.5, 30.0, random.Random(7))
    second = Backoff(0.5, 30.0, random.Random(7))
    a = [first.next_delay() for _ in range(8)]
    assert a == [second.next_delay() for _ in range(8)]
    expected_rng = random.Random(7)
    assert a == [expected_rng.uniform(0, min(30.0, 0.5 * 2**n)) for n in range(8)]
    # Full jitter: many delays at the cap spread over the whole range, not near it.
    capped = Backoff(1.0, 10.0, random.Random(1))
    capped.failures = 100
    delays = [capped.next_delay() for _ in range(2000)]
    assert max(delays) <= 10.0
    assert min(delays) < 1.0 and sum(delays) / len(delays) == pytest.approx(5.0, abs=0.5)


def test_config_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('appliance_url = "http://127.0.0.1:9"\nheartbeat_s = 5\nbatch_size = 200\n')
    cfg = load_agent_config(path, {"TOWERBOX_AGENT_BATCH_SIZE": "50"})
    assert (cfg.appliance_url, cfg.heartbeat_s, cfg.batch_size) == ("http://127.0.0.1:9", 5.0, 50)
    with pytest.raises(ConfigError, match="batch_size"):
        load_agent_config(path, {"TOWERBOX_AGENT_BATCH_SIZE": "5000"})
    path.write_text("nope = 1\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_agent_config(path, {})
    with pytest.raises(ConfigError, match="backoff_cap_s"):
        load_agent_config(tmp_path / "absent.toml", {"TOWERBOX_AGENT_BACKOFF_CAP_S": "0.1"})


def test_enrollment_file_is_private_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "state" / "enrollment.json"
    with pytest.raises(ConfigError, match="not enrolled"):
        load_enrollment(path)
    enrollment = Enrollment("https://r.example", "site-1", "tbs_secret", "/ca.pem")
    save_enrollment(path, enrollment)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_enrollment(path) == enrollment
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        load_enrollment(path)
    token = tmp_path / "token"
    token.write_text("tbx_abc\n")
    token.chmod(0o640)
    with pytest.raises(ConfigError, match="0600"):
        read_token(token)
    token.chmod(0o600)
    assert read_token(token) == "tbx_abc"


def test_batches_are_cut_to_the_byte_bound() -> None:
    big = "x" * 20_000
    entries = [WireEntry(i, "k", "t", str(i), {"blob": big}) for i in range(1, 1001)]
    body, count = encode_batch(entries, 0)
    assert len(body) <= MAX_BATCH_BYTES
    assert 0 < count < 1000
    small, n = encode_batch(entries[:10], 0)
    assert n == 10 and len(small) < MAX_BATCH_BYTES


def test_make_runs_agent_config_meets_its_appliance_config() -> None:
    """`make run`'s agent (etc/agent-dev.toml) talks to the dev appliance's port and
    serves the blob relay where etc/dev.toml's appliance looks for it."""
    from appliance.config_load import load_config

    repo = Path(__file__).resolve().parents[2]
    agent = load_agent_config(repo / "etc" / "agent-dev.toml", env={})
    node = load_config(repo / "etc" / "dev.toml", env={})
    assert agent.appliance_url == f"http://{node.api.host}:{node.api.port}"
    assert agent.relay_socket == node.artifacts.registry_relay
    assert agent.state_dir.startswith("var/") and agent.token_file.startswith("var/")
