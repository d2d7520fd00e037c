"""idle_uplink_bytes_per_site_min: what a quiet enrolled site sends to the registry per
minute, heartbeats included, TLS excluded (issue 17; target at most 2,000 bytes).

A real registry, a real appliance (libvirt test driver, simulated GPUs and N6) and a
real agent at its default heartbeat interval, enrolled; the agent reaches the
registry through a TCP proxy that keeps every byte it sends upstream (plain HTTP:
request lines, headers and bodies). After a warm-up, the node idles for the measured
window; the figure is those bytes scaled to a minute.

Usage: .venv/bin/python bench/idle_uplink.py [--window-s 75] [--warmup-s 20]
Exits non-zero when the target is missed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent.config import AgentConfig  # noqa: E402
from tests.integration.sync.lab import Lab, open_lab  # noqa: E402

TARGET_BYTES_PER_MIN = 2000
HEARTBEAT = "POST /api/v1/sync/heartbeat"
_REQUEST_LINE = re.compile(rb"(GET|POST|PUT|PATCH|DELETE|HEAD) (/[^ ?]*)[^ ]* HTTP/1\.[01]\r\n")


def _wait_for_versions(lab: Lab, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with lab.registry.operator() as op:
            site = op.get(f"/api/v1/sites/{lab.site}").json()
        if (site.get("versions") or {}).get("towerbox"):
            return
        time.sleep(0.5)
    raise AssertionError(f"the site never reported its versions:\n{lab.agent.log()}")


def _requests(sent: bytes) -> list[tuple[str, int]]:
    """Each request in the stream: its method and path, and its size in bytes."""
    found = list(_REQUEST_LINE.finditer(sent))
    ends = [m.start() for m in found[1:]] + [len(sent)]
    return [
        (f"{m.group(1).decode()} {m.group(2).decode()}", end - m.start())
        for m, end in zip(found, ends, strict=True)
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window-s", type=float, default=75.0, help="measured idle time")
    parser.add_argument("--warmup-s", type=float, default=20.0)
    args = parser.parse_args()
    if args.window_s < 60:
        parser.error("the window is at least 60 s: a minute of idle traffic")
    heartbeat_s = AgentConfig().heartbeat_s  # the default a site runs with
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tbx-uplink-")))
        lab = stack.enter_context(open_lab(tmp, ""))
        lab.agent.env["TOWERBOX_AGENT_HEARTBEAT_S"] = str(heartbeat_s)
        lab.proxy.record_up = True
        lab.agent.start()
        _wait_for_versions(lab)
        time.sleep(args.warmup_s)
        warmup = bytes(lab.proxy.upstream)
        lab.proxy.upstream.clear()
        lab.proxy.connections = 0
        started = time.monotonic()
        time.sleep(args.window_s)
        sent = bytes(lab.proxy.upstream)
        connections = lab.proxy.connections
        elapsed = time.monotonic() - started
        lab.proxy.record_up = False
    per_min = len(sent) * 60 / elapsed
    requests = _requests(sent)
    beats = [size for name, size in requests if name == HEARTBEAT]
    full = [size for name, size in _requests(warmup) if name == HEARTBEAT][:1]
    print(
        f"idle_uplink_bytes_per_site_min: {per_min:.0f} bytes "
        f"(target <= {TARGET_BYTES_PER_MIN}; {len(sent)} bytes in {elapsed:.0f} s, "
        f"heartbeat every {heartbeat_s:g} s)"
    )
    print(f"idle_uplink_heartbeats: {len(beats)} count")
    print(f"idle_uplink_bytes_per_heartbeat: {sum(beats) / max(len(beats), 1):.0f} bytes")
    if full:
        print(f"idle_uplink_full_heartbeat_bytes: {full[0]} bytes (the first, with host facts)")
    # Each new connection is a TCP (and, over TLS, a handshake's) cost the figure leaves
    # out: the registry closes idle connections after its [serve] keep_alive_s.
    print(f"idle_uplink_connections: {connections} count")
    counts = Counter(name for name, _ in requests)
    for name, count in sorted(counts.items()):
        print(f"  {count:4d} x {name}")
    return 0 if beats and per_min <= TARGET_BYTES_PER_MIN else 1


if __name__ == "__main__":
    sys.exit(main())
