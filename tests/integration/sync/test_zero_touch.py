"""Zero-touch enrollment and node replacement with real processes: a registry in its
network namespace, appliances and agents that carry only a provisioning credential,
the registry's URL and a hardware identity.

What an installer does on each node (cloud-init in docs/enrollment.md) is done here
before the agent starts: agent.toml and the credential dropped, the agent's appliance
token made, the N6 trunk declared. Everything after that comes from the registry.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.integration.sync.fleet import AgentProcess, RegistryProcess, agent_env, wait_in_sync
from tests.integration.sync.wan import Wan, wan_namespace
from tests.support.appliance import make_config
from tests.support.daemon import Daemon, running_daemon
from tests.support.desired import ACME, CAMS
from towerbox_core.secret_files import write_secret_file

pytestmark = pytest.mark.root

MACHINE_A = "5d1e0c7a9b2f4e3d8c6b5a4f3e2d1c0b"
MACHINE_B = "SN-CZ2291XK7Q"  # a DMI serial, as product_serial gives it
GROUP = "tier=edge"
GPU_DOC = {"layouts": {"night": {"counts": {"1g.10gb": 4}}}}


@dataclass
class Node:
    daemon: Daemon
    admin_token: str
    agent: AgentProcess

    def desired(self) -> dict[str, Any]:
        with self.daemon.http(self.admin_token) as local:
            result: dict[str, Any] = local.get("/api/v1/desired").json()
            return result

    def wait_configured(self, timeout: float = 120) -> None:
        """Until the group's documents are applied: GPU layouts, tenants, VNets."""
        end = time.monotonic() + timeout
        summary: dict[str, Any] = {}
        while time.monotonic() < end:
            try:
                summary = self.desired()
            except httpx.HTTPError:
                summary = {}
            if all(
                summary.get(kind, {}).get("result") == "applied"
                for kind in ("gpu", "tenants", "vnets")
            ):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"never configured ({summary}):\n{self.agent.log()}")
        with self.daemon.http(self.admin_token) as local:
            assert "night" in local.get("/api/v1/gpus/layouts").json()
            vnets = {v["name"] for v in local.get("/api/v1/n6/vnets").json()}
            assert vnets == {"llm", "cams"}
            assert local.get("/api/v1/tenants/acme").json()["labels"] == {"tier": "gold"}


@pytest.fixture
def wan() -> Iterator[Wan]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("network namespaces and nftables need root and the nft tool")
    with wan_namespace() as opened:
        yield opened


@pytest.fixture
def registry(wan: Wan, tmp_path: Path, database: str) -> Iterator[RegistryProcess]:
    """The registry (SQLite, or PostgreSQL: conftest's ``database``), not started: a
    test starts it when it wants it up."""
    process = RegistryProcess(wan, tmp_path / "registry", database)
    process.state_dir.mkdir()
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def installed_node(
    tmp: Path, name: str, registry_url: str, credential: str, hardware_id: str
) -> Iterator[Node]:
    """An appliance running and its agent installed as an installer leaves it (not
    started, not enrolled)."""
    home = tmp / name
    home.mkdir()
    cfg = make_config(
        home,
        TOWERBOX_GPU_BACKEND="simulated",
        TOWERBOX_N6_BACKEND="simulated",
        TOWERBOX_ARTIFACTS_REGISTRY_RELAY=str(home / "agent" / "blobs.sock"),
    )
    agent_dir = home / "agent"
    agent_dir.mkdir()
    credential_file = agent_dir / "provisioning-credential"
    write_secret_file(credential_file, credential + "\n")
    identity_file = agent_dir / "product_serial"
    identity_file.write_text(hardware_id + "\n")
    token_file = agent_dir / "token"
    with running_daemon(cfg, home, 0) as daemon:
        daemon.wait_notify("READY=1")
        env = agent_env(
            daemon,
            agent_dir,
            token_file,
            TOWERBOX_AGENT_PROVISIONING_TOKEN_FILE=str(credential_file),
            TOWERBOX_AGENT_REGISTRY_URL=registry_url,
            TOWERBOX_AGENT_HARDWARE_ID_FILE=str(identity_file),
            TOWERBOX_AGENT_PROVISION_REFUSED_RETRY_S="1",
        )
        agent = AgentProcess(agent_dir, env)
        try:
            made = agent.cli(
                "token", "--out", str(token_file), "--admin-token", str(cfg.cli_token_file)
            )
            assert made.returncode == 0, made.stderr
            admin_token = cfg.cli_token_file.read_text().strip()
            with daemon.http(admin_token) as local:
                assert local.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs"}).status_code == 200
            yield Node(daemon, admin_token, agent)
        finally:
            agent.stop()


def _publish_group_documents(op: httpx.Client) -> None:
    for kind, document in (
        ("gpu", GPU_DOC),
        ("vnets", {"vnets": [CAMS]}),
        ("tenants", {"tenants": {"acme": ACME}}),
    ):
        resp = op.put(f"/api/v1/groups/{GROUP}/desired/{kind}", json=document)
        assert resp.status_code == 200, resp.text


def _credential(op: httpx.Client, **body: Any) -> str:
    resp = op.post(
        "/api/v1/provisioning-credentials",
        json={"name": "installer", "labels": {"tier": "edge"}, "region": "eu", **body},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def _wait_log(agent: AgentProcess, text: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in agent.log():
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never logged:\n{agent.log()}")


def test_a_node_with_only_a_credential_reaches_its_full_configuration(
    tmp_path: Path, registry: RegistryProcess
) -> None:
    # The credential is made on a registry that is then stopped: the node is installed
    # and started while the registry cannot be reached.
    registry.start()
    with registry.operator() as op:
        credential = _credential(op, allow=[{"hardware_id": MACHINE_A, "site": "cell-zt"}])
        _publish_group_documents(op)
    registry.stop()
    with installed_node(tmp_path, "node", registry.url, credential, MACHINE_A) as node:
        node.agent.start()
        _wait_log(node.agent, "provisioning: registry:")
        assert node.agent.proc is not None and node.agent.proc.poll() is None
        registry.start()
        node.wait_configured()
        wait_in_sync(node.daemon, node.admin_token, registry, "cell-zt", timeout=120)
        with registry.operator() as op:
            site = op.get("/api/v1/sites/cell-zt").json()
            identity = op.get("/api/v1/sites/cell-zt/identity").json()
        assert (site["labels"], site["region"], site["epoch"]) == ({"tier": "edge"}, "eu", 1)
        assert [(i["hardware_id"], i["state"]) for i in identity] == [(MACHINE_A, "bound")]
        assert "provisioned: site cell-zt (created from the credential's allow-list)" in (
            node.agent.log()
        )


def test_a_replacement_node_starts_a_new_epoch_and_keeps_the_old_journal(
    tmp_path: Path, registry: RegistryProcess
) -> None:
    registry.start()
    with registry.operator() as op:
        credential = _credential(op)
        made = op.post("/api/v1/sites", json={"name": "cell-r", "labels": {"tier": "edge"}})
        assert made.status_code == 201, made.text
        listed = op.put("/api/v1/sites/cell-r/identity", json={"hardware_id": MACHINE_A})
        assert listed.status_code == 200, listed.text
        _publish_group_documents(op)

    # Node A: provisions, applies the documents, syncs its journal.
    with installed_node(tmp_path, "node-a", registry.url, credential, MACHINE_A) as node_a:
        node_a.agent.start()
        node_a.wait_configured()
        held_a, _ = wait_in_sync(node_a.daemon, node_a.admin_token, registry, "cell-r", timeout=120)
        with registry.operator() as op:
            journal_a = op.get("/api/v1/sites/cell-r/journal", params={"limit": 5000}).json()
        secret_a = msgspec.json.decode((node_a.agent.state_dir / "enrollment.json").read_bytes())[
            "secret"
        ]
    assert held_a["count"] == len(journal_a["entries"]) > 5

    # Node A's server fails. Node B is installed with the same credential; its identity
    # is not listed yet: refused, logged with the code, retried.
    with installed_node(tmp_path, "node-b", registry.url, credential, MACHINE_B) as node_b:
        node_b.agent.start()
        _wait_log(node_b.agent, "registry refused (403 identity_not_allowed)")
        with registry.operator() as op:
            replacement = op.put(
                "/api/v1/sites/cell-r/identity",
                json={"hardware_id": MACHINE_B, "replacement": True},
            )
            assert replacement.status_code == 200, replacement.text
        node_b.wait_configured()
        held_b, _ = wait_in_sync(node_b.daemon, node_b.admin_token, registry, "cell-r", timeout=120)
        assert "journal_conflict" not in node_b.agent.log()
        assert "journal epoch 2" in node_b.agent.log()

        with registry.operator() as op:
            archived = op.get(
                "/api/v1/sites/cell-r/journal", params={"epoch": 1, "limit": 5000}
            ).json()
            current = op.get("/api/v1/sites/cell-r/journal", params={"limit": 5000}).json()
            site = op.get("/api/v1/sites/cell-r").json()
            conflicts = op.get("/api/v1/conflicts", params={"site": "cell-r"}).json()
        # Nothing of node A lost; node B's journal from seq 1.
        assert archived["entries"] == journal_a["entries"]
        assert current["entries"][0]["seq"] == 1
        assert len(current["entries"]) == held_b["count"]
        assert [(e["epoch"], e["hardware_id"], e["current"]) for e in site["epochs"]] == [
            (1, MACHINE_A, False),
            (2, MACHINE_B, True),
        ]
        assert conflicts["conflicts"] == []
        # B's desired outcomes went up B's own journal: re-applied there.
        applied = {e["object_id"] for e in current["entries"] if e["kind"] == "desired.applied"}
        assert applied == {"gpu", "tenants", "vnets"}

        # Node A's secret no longer works.
        refused = httpx.get(
            f"{registry.url}/api/v1/sync/journal/head",
            headers={"Authorization": f"Bearer {secret_a}"},
        )
        assert (refused.status_code, refused.json()["code"]) == (401, "invalid_site_secret")
