"""node_idle_rss_mb, node_idle_cpu_pct and ui_idle_cpu_pct: what an idle node costs.

The node's three processes run as its units run them, with their default intervals:
the appliance (libvirt test driver, 100 VMs, half of them running, the monitor at its
default interval), the edge agent enrolled with a registry on loopback and in sync,
and `towerbox ui`. The registry is the fleet's, not the node's: not measured.

After a warm-up: the resident memory of the three process trees, and their CPU time
over WINDOW_S over the wall time (% of one core), read from /proc. Then five pages
open in headless Chromium and the UI's own CPU over another WINDOW_S.
Targets (issue 16): <= 250 MB, <= 2 %, <= 1 %. Exits 1 when one is missed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from appliance.config import Config, JobsConfig
from edge_agent.config import AgentConfig
from tests.integration.sync.fleet import AgentProcess, agent_env
from tests.support.appliance import admin_password, make_config
from tests.support.daemon import Daemon, running_daemon
from tests.support.registry_process import operator_headers, registry_env, serve
from tests.ui.stack import CHROMIUM, CHROMIUM_FLAGS, NODE_CONFIG, log_in, ui_process

VMS = 100
WARMUP_S = 30.0
WINDOW_S = 60.0
PAGES = ("/", "/vms", "/vms/bench-000", "/gpus", "/events")
TARGETS = {"node_idle_rss_mb": 250.0, "node_idle_cpu_pct": 2.0, "ui_idle_cpu_pct": 1.0}
TICKS_S = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (which may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue  # ended meanwhile
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def rss_mb(roots: list[int]) -> float:
    kib = 0
    for pid in (p for r in roots for p in _tree(r)):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                kib += int(line.split()[1])
    return kib / 1024


def cpu_s(roots: list[int]) -> float:
    """User and system time of the trees, with that of children they have reaped."""
    fields = [_stat(p) for r in roots for p in _tree(r)]
    # utime, stime, cutime, cstime: fields 14-17 of stat, 11-14 after the name.
    return sum(sum(int(v) for v in f[11:15]) for f in fields) / TICKS_S


def cpu_pcts(roots: list[int], window_s: float) -> list[float]:
    """Each tree's CPU over ``window_s``, in % of one core."""
    used, started = [cpu_s([r]) for r in roots], time.monotonic()
    time.sleep(window_s)
    wall = time.monotonic() - started
    return [100 * (cpu_s([r]) - u) / wall for r, u in zip(roots, used, strict=True)]


def _ui_pid(port: str) -> int:
    """The `towerbox ui` this process started, found by the port it was given."""
    me = os.getpid()
    for pid in _tree(me)[1:]:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"ui" in args and port.encode() in args:
            return pid
    raise SystemExit(f"no towerbox ui on port {port} among this process's children")


@contextmanager
def _node(tmp: Path) -> Iterator[tuple[Daemon, Config]]:
    """The appliance with its default job intervals, and its config."""
    (tmp / "absent.toml").write_text(NODE_CONFIG)
    cfg = make_config(tmp)
    defaults = {
        "TOWERBOX_JOBS_MONITOR_INTERVAL_S": str(JobsConfig.monitor_interval_s),
        "TOWERBOX_JOBS_RECONCILE_INTERVAL_S": str(JobsConfig.reconcile_interval_s),
    }
    # No watchdog pings: nobody reads the notify socket after READY.
    with running_daemon(cfg, tmp, 0, extra_env=defaults) as daemon:
        daemon.wait_notify("READY=1", 60)
        yield daemon, cfg


@contextmanager
def _agent(daemon: Daemon, cfg: Config, tmp: Path) -> Iterator[AgentProcess]:
    """A registry on loopback and the agent enrolled with it, with its default intervals."""
    registry_url, reg_env = registry_env(tmp)
    agent_dir = tmp / "agent"
    agent_dir.mkdir()
    token = agent_dir / "token"
    env = agent_env(daemon, agent_dir, token)
    for key in ("heartbeat_s", "poll_s", "backoff_base_s", "backoff_cap_s", "request_timeout_s"):
        env[f"TOWERBOX_AGENT_{key.upper()}"] = str(getattr(AgentConfig, key))
    agent = AgentProcess(agent_dir, env)
    with serve(reg_env, registry_url, tmp / "registry.log"):
        agent.enroll_site(token, cfg.cli_token_file, registry_url, operator_headers(reg_env))
        agent.start()
        try:
            yield agent
        finally:
            agent.stop()


def _wait_synced(api: httpx.Client, agent: AgentProcess) -> None:
    end = time.monotonic() + 120
    while time.monotonic() < end:
        status = api.get("/api/v1/sync/status").json()
        if (status["agent"], status["wan"], status["queued"]) == ("running", "online", 0):
            return
        time.sleep(1)
    raise SystemExit(f"the agent never caught up: {status}\n{agent.log()[-3000:]}")


def _open_pages(url: str, password: str, seconds: float, ui: int) -> tuple[float, float]:
    """The UI's CPU % over ``seconds`` with PAGES open, and its RSS then."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        log_in(page, url, password)
        for path in PAGES[1:]:
            extra = context.new_page()
            extra.set_default_timeout(60_000)
            extra.goto(f"{url}{path}", wait_until="networkidle")
        time.sleep(WARMUP_S / 3)
        [pct] = cpu_pcts([ui], seconds)
        rss = rss_mb([ui])
        browser.close()
    return pct, rss


def main() -> int:
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="tbx-idle-bench-"))
    figures: dict[str, float] = {}
    try:
        (tmp / "node").mkdir()
        with (
            _node(tmp / "node") as (daemon, cfg),
            daemon.http(cfg.cli_token_file.read_text().strip()) as api,
        ):
            for i in range(VMS):
                body = {"name": f"bench-{i:03d}", "appliance": "demo", "start": i % 2 == 0}
                api.post("/api/v1/vms", json=body).raise_for_status()
            with _agent(daemon, cfg, tmp) as agent, ui_process(daemon.url, tmp) as url:
                assert agent.proc is not None
                _wait_synced(api, agent)
                ui = _ui_pid(url.rsplit(":", 1)[1])
                roots = [daemon.proc.pid, agent.proc.pid, ui]
                time.sleep(WARMUP_S)
                load = os.getloadavg()
                rss = [rss_mb([root]) for root in roots]
                pcts = cpu_pcts(roots, WINDOW_S)
                figures["node_idle_rss_mb"] = sum(rss)
                figures["node_idle_cpu_pct"] = sum(pcts)
                # The UI with no page open; ui_idle_cpu_pct is the UI with PAGES open.
                names = ("appliance", "agent", "ui_no_pages")
                for name, mb, pct in zip(names, rss, pcts, strict=True):
                    print(f"{name}_idle_rss_mb: {mb:.1f} MB")
                    print(f"{name}_idle_cpu_pct: {pct:.2f} %")
                figures["ui_idle_cpu_pct"], ui_rss = _open_pages(
                    url, admin_password(cfg), WINDOW_S, ui
                )
                print(f"ui_rss_with_pages_mb: {ui_rss:.1f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"node_idle_rss_mb: {figures['node_idle_rss_mb']:.1f} MB")
    print(f"node_idle_cpu_pct: {figures['node_idle_cpu_pct']:.2f} %")
    print(f"ui_idle_cpu_pct: {figures['ui_idle_cpu_pct']:.2f} %")
    print(f"load_average_1m: {load[0]:.2f} load")
    missed = [name for name, value in figures.items() if value > TARGETS[name]]
    for name in missed:
        print(f"missed: {name} > {TARGETS[name]}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
