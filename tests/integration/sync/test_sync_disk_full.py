"""Journal shipping with a full disk: the appliance's state disk full keeps the agent
running and shipping exactly (no entry lost or doubled) while its acks are refused,
logged once as a clear error, and the acks resume when space returns; the agent's
own state disk full refuses an enrollment before the one-time token is spent."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.state import Enrollment, check_room, save_enrollment
from tests.integration.sync.fleet import wait_in_sync
from tests.integration.sync.lab import open_lab
from tests.support.disk_full import fill, small_tmpfs
from towerbox_core.errors import StorageFull

pytestmark = pytest.mark.root

FULL_LOG = "the appliance's state disk is full"


def _wait(what: str, ok: Callable[[], bool], log: Callable[[], str], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ok():
            return
        time.sleep(0.2)
    raise AssertionError(f"never {what}:\n{log()[-3000:]}")


def test_the_journal_ships_while_the_appliance_disk_is_full(tmp_path: Path) -> None:
    with (
        small_tmpfs(tmp_path / "node" / "state", "16m") as state,
        open_lab(tmp_path, "", TOWERBOX_STATE_RESERVE_MIB="1") as lab,
    ):
        lab.wan.cut(lab.registry.port)
        lab.agent.start()
        lab.fill_journal(1500)
        filler = fill(state, leave_bytes=512 * 1024)  # below the appliance's reserve
        with lab.daemon.http(lab.admin_token) as local:
            refused = local.post("/api/v1/tenants", json={"name": "acme"})
            assert refused.status_code == 507 and refused.json()["code"] == "storage_full"
            lab.wan.heal()

            # Everything written before the disk filled reaches the registry, exactly.
            node, _ = wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, 120)
            assert node["count"] >= 1500
            # The appliance cannot record the acks; the agent says why, once, and lives.
            _wait("logged the full disk", lambda: FULL_LOG in lab.agent.log(), lab.agent.log)
            assert lab.agent.log().count(FULL_LOG) == 1
            assert "storage_full" in lab.agent.log()
            assert lab.agent.proc is not None and lab.agent.proc.poll() is None
            status = local.get("/api/v1/sync/status").json()
            assert status["acked_seq"] < status["head"] == node["head"]
            # The registry sees the node's health through the heartbeat.
            with lab.registry.operator() as op:
                _wait(
                    "saw the node's disk full at the registry",
                    lambda: (
                        op.get(f"/api/v1/sites/{lab.site}").json()["heartbeat"]["host"]["health"]
                        == "storage_full"
                    ),
                    lab.agent.log,
                )

            filler.unlink()
            # Every entry shipped while the disk was full is acked. The node may journal
            # more once it can write again (the disk alert resolving): those ship and
            # are acked too, so the ack reaches the old head or passes it.
            _wait(
                "acked the journal after space returned",
                lambda: local.get("/api/v1/sync/status").json()["acked_seq"] >= node["head"],
                lab.agent.log,
            )
            # Said once the ack went through: a moment after the appliance has it.
            _wait(
                "logged that the appliance takes acks again",
                lambda: "the appliance takes journal acks again" in lab.agent.log(),
                lab.agent.log,
            )
            assert local.post("/api/v1/tenants", json={"name": "acme"}).status_code == 201
        lab.fill_journal(300)
        wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, 120)


def test_a_full_agent_disk_refuses_before_the_token_is_spent(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "agent", "1m") as agent_dir:
        state_file = agent_dir / "enrollment.json"
        filler = fill(agent_dir)
        with pytest.raises(StorageFull) as refused:
            check_room(state_file)
        assert refused.value.code == "storage_full" and str(agent_dir) in refused.value.message
        with pytest.raises(StorageFull):
            save_enrollment(state_file, Enrollment("http://registry", "site-a", "secret"))
        assert sorted(p.name for p in agent_dir.iterdir()) == ["filler"]  # no partial file
        filler.unlink()
        check_room(state_file)
        save_enrollment(state_file, Enrollment("http://registry", "site-a", "secret"))
        assert sorted(p.name for p in agent_dir.iterdir()) == ["enrollment.json"]
