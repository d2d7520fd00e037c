"""A link on which a real guest gets its address by DHCP, as on a site's tenant
network: a Linux bridge holding the host's address, and busybox's udhcpd serving a
small range on it. Needs root (and busybox, which the demo image's build installs).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST_ADDRESS = "10.231.0.1"
_PREFIX = 24
_RANGE = ("10.231.0.10", "10.231.0.50")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def dhcp_link(bridge: str) -> Iterator[str]:
    """The bridge ``bridge`` (at most 15 characters) with ``HOST_ADDRESS`` and a DHCP
    server on it, while the block runs; removed after. Yields the bridge's name."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox is not installed (make setup installs busybox-static)")
    work = Path(tempfile.mkdtemp(prefix="towerbox-dhcp-"))
    leases = work / "udhcpd.leases"
    leases.touch()
    conf = work / "udhcpd.conf"
    conf.write_text(
        f"start {_RANGE[0]}\nend {_RANGE[1]}\ninterface {bridge}\n"
        f"lease_file {leases}\npidfile {work / 'udhcpd.pid'}\n"
        f"option subnet 255.255.255.0\noption router {HOST_ADDRESS}\noption lease 3600\n"
    )
    _ip("link", "add", bridge, "type", "bridge")
    server = None
    try:
        _ip("addr", "add", f"{HOST_ADDRESS}/{_PREFIX}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        server = subprocess.Popen(
            [busybox, "udhcpd", "-f", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield bridge
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        # Gone already when the block failed before making it: nothing to check.
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True, timeout=30)
        shutil.rmtree(work, ignore_errors=True)
