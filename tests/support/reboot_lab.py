"""Setting up the node that tests/support/reboot.py power-cycles: its configuration
(real libvirtd, simulated GPU, real Open vSwitch, a procfs whose boot id the lab
owns), the registry and the enrolled agent, the node's content, and the teardown
that leaves nothing behind."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from appliance.services.uptime import BOOT_ID
from tests.integration.sync.fleet import AgentProcess, agent_env
from tests.support.appliance import REAL_HOST, REPO, make_config
from tests.support.daemon import running_daemon
from tests.support.reboot import RebootLab
from tests.support.registry_process import operator_headers, registry_env
from towerbox_core import subp

log = logging.getLogger(__name__)


def _procfs(root: Path) -> Path:
    """This host's meminfo and cpuinfo, with a boot id the lab can change."""
    root.mkdir(parents=True)
    for name in ("meminfo", "cpuinfo"):
        (root / name).symlink_to(f"/proc/{name}")
    boot_id = root / BOOT_ID
    boot_id.parent.mkdir(parents=True)
    boot_id.write_text(Path("/proc", BOOT_ID).read_text())
    return root


@contextmanager
def reboot_lab(tag: str, owner: str) -> Iterator[RebootLab]:
    """A node enrolled with a registry, populated, its processes running; removed after."""
    image_dir = Path(os.environ.get("TOWERBOX_IMAGE_DIR", REPO / "var" / "images"))
    subp.run([str(REPO / "images" / "demo" / "build.sh"), str(image_dir)], timeout=600)
    # QEMU runs as its own user: disks and console logs must be readable to it.
    work = Path(tempfile.mkdtemp(prefix="towerbox-reboot-", dir="/var/tmp"))
    work.chmod(0o755)
    cfg = make_config(
        work,
        TOWERBOX_LIBVIRT_URI=SYSTEM_URI,
        TOWERBOX_IMAGE_DIR=str(image_dir),
        TOWERBOX_NODE_NAME=f"reboot-{tag}",
        TOWERBOX_GPU_BACKEND="simulated",
        TOWERBOX_N6_BACKEND="real",
        TOWERBOX_N6_OWNER=owner,
        TOWERBOX_API_SOCKET=str(work / "run" / "appliance.sock"),
        TOWERBOX_ARTIFACTS_REGISTRY_RELAY=str(work / "run" / "agent" / "blobs.sock"),
        **{**REAL_HOST, "TOWERBOX_HOST_PROCFS_ROOT": str(_procfs(work / "proc"))},
    )
    try:
        registry_url, reg_env = registry_env(work)
        extra = {
            "TOWERBOX_GPU_BACKEND": "simulated",
            "TOWERBOX_N6_BACKEND": "real",
            "TOWERBOX_N6_OWNER": owner,
        }
        # No watchdog pings: nobody reads the notify socket after READY.
        with running_daemon(cfg, work, 0, extra_env=extra) as daemon:
            agent_dir = work / "agent"
            agent_dir.mkdir()
            token_file = agent_dir / "token"
            agent = AgentProcess(
                agent_dir,
                agent_env(
                    daemon,
                    agent_dir,
                    token_file,
                    TOWERBOX_AGENT_RELAY_SOCKET=str(work / "run" / "agent" / "blobs.sock"),
                    # Over the unix socket in the runtime folder that the reboot empties.
                    TOWERBOX_AGENT_APPLIANCE_URL=f"unix:{cfg.api.socket}",
                ),
            )
            lab = RebootLab(cfg, work, daemon, tag, owner, reg_env, registry_url, agent)
            try:
                daemon.wait_notify("READY=1")
                lab.start_registry()
                agent.enroll_site(
                    token_file, cfg.cli_token_file, registry_url, operator_headers(reg_env)
                )
                lab.populate()
                agent.start()
                lab.start_ui()
                yield lab
            finally:
                if daemon.proc.poll() is not None:  # the test ended between reboot and boot
                    daemon.respawn()
                    with contextlib.suppress(AssertionError):
                        daemon.wait_notify("READY=1")
                refused = lab.clean_through_api()
                lab.stop_all()
                lab.stop_registry()
                lab.remove_leftovers()
                if refused:
                    log.warning("the API refused part of the clean-up: %s", "; ".join(refused))
    finally:
        shutil.rmtree(work, ignore_errors=True)
