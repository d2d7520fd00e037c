"""The registry's PostgreSQL restarting mid-sync: requests meanwhile answer 503
store_unavailable (never a 500), the agent backs off and retries, and once the server
is back the registry holds exactly the node's journal."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.integration.sync.fleet import wait_in_sync
from tests.integration.sync.lab import open_lab
from tests.support.postgres import postgres_server

pytestmark = [pytest.mark.root, pytest.mark.postgres, pytest.mark.slow]


def test_a_postgresql_restart_mid_sync_loses_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("network namespaces and nftables need root and the nft tool")
    with postgres_server() as server:
        # A server of its own, which the test restarts; the registry's namespace
        # reaches it through its unix socket.
        url = server.create_socket_database("sync")
        with open_lab(tmp_path, url) as lab:
            lab.fill_journal(20_000)
            lab.agent.start()
            lab.wait_registry_past(2000)
            server.restart(down_s=3.0)
            lab.fill_journal(1000)
            wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=240)
            logs = "\n".join(
                p.read_text() for p in sorted(lab.registry.state_dir.glob("registry-*.log"))
            )
    assert "store_unavailable" in logs, "the restart did not meet a request"
    assert "unhandled error" not in logs
    assert "internal_error" not in logs
