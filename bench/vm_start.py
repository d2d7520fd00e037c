"""vm_start_overhead_ratio: API create+start to running, over raw libvirt-python.

Both sides boot the same tiny demo VM under libvirtd + QEMU: the appliance through
its HTTP API (validation, allocation, overlay, XML, journal, define, start), the
baseline with defineXML + create of the XML the appliance generated. Median of
RUNS each. Target (issue: appliance foundation): ratio <= 1.2. Also prints
appliance_idle_rss_mb, the daemon's resident memory after it has idled.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

import libvirt

from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from tests.support.appliance import real_node_config
from tests.support.daemon import running_daemon

RUNS = 5
TARGET_RATIO = 1.2


def _wait_running(conn: libvirt.virConnect, name: str) -> None:
    dom = conn.lookupByName(name)
    while dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
        time.sleep(0.002)


def _raw_start(conn: libvirt.virConnect, xml: str) -> float:
    started = time.perf_counter()
    dom = conn.defineXML(xml)
    dom.create()
    _wait_running(conn, dom.name())
    elapsed = time.perf_counter() - started
    dom.destroy()
    dom.undefine()
    return elapsed


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    try:
        conn = libvirt.open(SYSTEM_URI)
    except libvirt.libvirtError as err:
        print(f"vm_start needs libvirtd ({SYSTEM_URI}): {err}", file=sys.stderr)
        return 2
    cfg, work = real_node_config("bench")
    api_times: list[float] = []
    raw_times: list[float] = []
    try:
        with running_daemon(cfg, work, watchdog_usec=0) as d:
            d.wait_notify("READY=1", timeout=60)
            time.sleep(5)  # idle: the first sweeps and reconciles have run
            rss = _rss_mb(d.proc.pid)
            with d.http(cfg.cli_token_file.read_text().strip()) as api:
                for i in range(RUNS):
                    name = f"bench-api-{i}"
                    started = time.perf_counter()
                    resp = api.post(
                        "/api/v1/vms", json={"name": name, "appliance": "demo", "start": True}
                    )
                    assert resp.status_code == 201, resp.text
                    _wait_running(conn, name)
                    api_times.append(time.perf_counter() - started)
                    xml = conn.lookupByName(name).XMLDesc()
                    api.delete(f"/api/v1/vms/{name}")
                    raw_xml = xml.replace(f"<name>{name}</name>", f"<name>bench-raw-{i}</name>")
                    raw_xml = raw_xml.replace(resp.json()["id"], str(uuid.uuid4()))
                    raw_times.append(_raw_start(conn, raw_xml))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        conn.close()
    api_s, raw_s = statistics.median(api_times), statistics.median(raw_times)
    ratio = api_s / raw_s
    print(f"vm_start_api_ms: {api_s * 1000:.0f} ms")
    print(f"vm_start_raw_ms: {raw_s * 1000:.0f} ms")
    print(f"vm_start_overhead_ratio: {ratio:.2f} ratio")
    print(f"appliance_idle_rss_mb: {rss:.1f} MB")
    if ratio > TARGET_RATIO:
        print(f"MISSED: vm_start_overhead_ratio <= {TARGET_RATIO}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
