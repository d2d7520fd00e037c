"""`towerbox registry provisioning|site-identity|site-rebind` as an operator runs them."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from registry.config import load_config
from registry.context import build_registry
from tests.support.registry_process import registry_cli


def _env(tmp: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")},
        "TOWERBOX_REGISTRY_CONFIG": str(tmp / "absent.toml"),
        "TOWERBOX_REGISTRY_STATE_DIR": str(tmp / "state"),
    }


def test_credentials_identities_and_rebind_from_the_cli(tmp_path: Path) -> None:
    env = _env(tmp_path)
    made = registry_cli(
        env,
        "provisioning",
        "create",
        "rack-1",
        "--label",
        "tier=edge",
        "--allow",
        "4c4c4544=cell-1",
        "--allow",
        "SN-77",
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("tbp_")
    assert "shown this once" in made.stderr
    listed = registry_cli(env, "provisioning", "list")
    assert "rack-1" in listed.stdout and "tier=edge" in listed.stdout
    assert token not in listed.stdout

    assert registry_cli(env, "site-create", "cell-2").returncode == 0
    identity = registry_cli(env, "site-identity", "cell-2", "0011aabb", "--json")
    assert msgspec.json.decode(identity.stdout)["state"] == "listed"
    bad = registry_cli(env, "site-identity", "cell-2", "no spaces")
    assert bad.returncode != 0 and "invalid_hardware_id" in bad.stderr
    rebound = registry_cli(env, "site-rebind", "cell-2", "--hardware-id", "0011aabb", "--json")
    assert rebound.returncode == 0, rebound.stderr
    reply = msgspec.json.decode(rebound.stdout)
    assert (reply["epoch"], reply["enrollment_token"][:4]) == (2, "tbe_")
    ended = registry_cli(env, "journal", "cell-2", "--epoch", "1", "--json")
    assert ended.returncode == 0, ended.stderr
    assert msgspec.json.decode(ended.stdout)["entries"] == []
    missing = registry_cli(env, "journal", "cell-2", "--epoch", "7")
    assert missing.returncode != 0 and "epoch_not_found" in missing.stderr
    unknown = registry_cli(env, "site-rebind", "nowhere")
    assert unknown.returncode != 0 and "site_not_found" in unknown.stderr

    revoked = registry_cli(env, "provisioning", "revoke", "1")
    assert revoked.returncode == 0, revoked.stderr
    registry = build_registry(load_config(tmp_path / "absent.toml", env))
    try:
        credential = registry.provisioning.credentials.list().credentials[0]
        assert credential.revoked_at is not None
        assert [a.site for a in credential.allow] == ["cell-1", None]
    finally:
        registry.db.close()
