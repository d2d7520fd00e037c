"""One sync lab: appliance, registry in a network namespace, agent (enrolled, stopped)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from appliance.services.metering import MeteringService
from appliance.store import journal
from appliance.store.compaction import compact
from appliance.store.db import open_database
from tests.integration.sync.fleet import AgentProcess, RegistryProcess, agent_env
from tests.integration.sync.wan import DelayProxy, Wan, wan_namespace
from tests.support.appliance import make_config
from tests.support.daemon import Daemon, running_daemon
from towerbox_core.wire import Actor


@dataclass
class Lab:
    daemon: Daemon
    admin_token: str  # the appliance's CLI token, for reading summaries
    registry: RegistryProcess
    agent: AgentProcess
    wan: Wan
    proxy: DelayProxy
    site: str
    db_path: Path

    def registry_head(self) -> int:
        with self.registry.operator() as op:
            return int(op.get(f"/api/v1/sites/{self.site}/journal/summary").json()["head"])

    def wait_registry_past(self, seq: int, timeout: float = 60) -> None:
        """Until the registry holds entries past ``seq`` (the agent is shipping)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if self.registry_head() > seq:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"registry never passed seq {seq}:\n{self.agent.log()}")

    def fill_journal(self, count: int, chunk: int = 2000) -> None:
        """Write entries through the appliance's own journal.append, as its services do.

        Chunks keep each write transaction short: the daemon writes too.
        """
        db = open_database(self.db_path)
        try:
            written = 0
            while written < count:
                n = min(chunk, count - written)
                with journal.write_transaction():
                    for i in range(written, written + n):
                        journal.append(
                            "vm.state", "vm", f"vm{i % 500}", {"state": "running", "n": i}
                        )
                written += n
        finally:
            db.close()

    def compact_all(self, copy_into: list[dict[str, Any]] | None = None) -> int:
        """Compact the whole journal as the daemon's job does (a rollup first), acked
        or not; the new compaction bound.

        ``copy_into`` gets every entry the journal holds just before the compaction
        drops some of them, read in the compaction's own transaction: with the
        registry's copy, the whole journal a node ever wrote.
        """

        def before(bound: int) -> None:
            if copy_into is not None:
                copy_into.extend(journal.entries(0, limit=1 << 30))
            MeteringService().write_rollup(bound)

        db = open_database(self.db_path)
        try:
            with journal.acting_as(Actor(job="compaction")):
                return compact(0, 3650, before=before).through
        finally:
            db.close()


@contextmanager
def open_lab(tmp_path: Path, database: str, **node_env: str) -> Iterator[Lab]:
    """Appliance and registry started, a site created, the agent enrolled (not started).

    ``node_env`` adds to the appliance's configuration.
    """
    cfg = make_config(
        tmp_path / "node",
        TOWERBOX_GPU_BACKEND="simulated",
        TOWERBOX_N6_BACKEND="simulated",
        # The agent's blob relay (agent_env puts it in the agent's folder).
        TOWERBOX_ARTIFACTS_REGISTRY_RELAY=str(tmp_path / "agent" / "blobs.sock"),
        **node_env,
    )
    (tmp_path / "node").mkdir(exist_ok=True)
    # No watchdog pings: nobody reads the notify socket after READY, and a full
    # datagram queue would block the daemon.
    # The daemon gets ``node_env`` too: config_env names only the settings every lab has.
    node = running_daemon(cfg, tmp_path / "node", 0, extra_env=dict(node_env))
    with wan_namespace() as wan, node as daemon:
        daemon.wait_notify("READY=1")
        registry = RegistryProcess(wan, tmp_path / "registry", database)
        registry.state_dir.mkdir()
        registry.start()
        proxy = DelayProxy((wan.ns_ip, registry.port))
        agent_dir = tmp_path / "agent"
        agent_dir.mkdir()
        token_file = agent_dir / "token"
        agent = AgentProcess(agent_dir, agent_env(daemon, agent_dir, token_file))
        try:
            with proxy:
                made = agent.cli(
                    "token", "--out", str(token_file), "--admin-token", str(cfg.cli_token_file)
                )
                assert made.returncode == 0, made.stderr
                with registry.operator() as op:
                    resp = op.post(
                        "/api/v1/sites",
                        json={"name": "site-a", "region": "eu", "labels": {"tier": "edge"}},
                    )
                    assert resp.status_code == 201, resp.text
                    enrollment_token = resp.json()["enrollment_token"]
                # Through the proxy: the agent's every registry request can be delayed.
                enrolled = agent.cli("enroll", f"http://127.0.0.1:{proxy.port}", enrollment_token)
                assert enrolled.returncode == 0, enrolled.stderr
                yield Lab(
                    daemon=daemon,
                    admin_token=cfg.cli_token_file.read_text().strip(),
                    registry=registry,
                    agent=agent,
                    wan=wan,
                    proxy=proxy,
                    site="site-a",
                    db_path=cfg.db_path,
                )
        finally:
            agent.stop()
            registry.stop()
