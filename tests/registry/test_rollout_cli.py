"""``towerbox registry rollout ...`` as an operator types it, then the registry's
workers carrying the rollout it created on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.support.registry_process import operator_headers, registry_cli, registry_env, serve


def test_the_cli_creates_shows_steers_and_refuses(tmp_path: Path) -> None:
    url, env = registry_env(tmp_path)
    for name in ("s1", "s2", "s3"):
        made = registry_cli(env, "site-create", name, "--label", "tier=gold")
        assert made.returncode == 0, made.stderr
    doc = tmp_path / "gpu.json"
    doc.write_text(json.dumps({"layout": "day"}))

    bad = registry_cli(env, "rollout", "create", "tier=gold", "gpu", str(doc), "--waves", "50,40")
    assert bad.returncode != 0
    assert "invalid_waves" in bad.stderr
    listed = registry_cli(env, "rollout", "list", "--json")
    assert json.loads(listed.stdout)["total"] == 0

    made = registry_cli(
        env, "rollout", "create", "tier=gold", "gpu", str(doc), "--waves", "50,100", "--json"
    )
    assert made.returncode == 0, made.stderr
    rollout = json.loads(made.stdout)
    assert (rollout["state"], [w["sites"] for w in rollout["waves"]]) == ("running", [1, 1, 1])
    shown = registry_cli(env, "rollout", "show", str(rollout["id"]))
    assert "rollout 1: gpu version 1 (previous none) to tier=gold" in shown.stdout
    assert "WAVE  PERCENT  STATE" in shown.stdout
    paused = registry_cli(env, "rollout", "pause", str(rollout["id"]))
    assert "state: paused (paused by cli)" in paused.stdout
    again = registry_cli(env, "rollout", "pause", str(rollout["id"]))
    assert "invalid_rollout_state" in again.stderr
    back = registry_cli(env, "rollout", "rollback", str(rollout["id"]))
    assert "no_previous_version" in back.stderr
    resumed = registry_cli(env, "rollout", "resume", str(rollout["id"]))
    assert resumed.returncode == 0, resumed.stderr

    # The server's workers step it: no site has ever called in, so each wave defers
    # its sites at once, lists them, and the rollout completes.
    with serve(env, url, tmp_path / "serve.log"):
        end = time.monotonic() + 30
        view = {}
        while time.monotonic() < end and view.get("state") != "completed":
            view = httpx.get(
                f"{url}/api/v1/rollouts/{rollout['id']}", headers=operator_headers(env)
            ).json()
            time.sleep(0.2)
    assert view["state"] == "completed", view
    assert [w["deferred"] for w in view["waves"]] == [1, 1, 1]
    shown = registry_cli(env, "rollout", "show", str(rollout["id"]))
    assert "deferred: s1 (wave 0) offline when its wave started" in shown.stdout
    listed = registry_cli(env, "rollout", "list")
    assert "wave 3/3, 3/3 sites" in listed.stdout
