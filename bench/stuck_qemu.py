"""stuck_qemu_sweep_ratio: the monitor sweep with one SIGSTOPped QEMU, over without.

Three demo VMs run under libvirtd + QEMU (made through the appliance's API). The
same monitor sweeps them all: RUNS sweeps with every QEMU answering, then RUNS with
one QEMU stopped (once the monitor has found it unresponsive), then RUNS again after
SIGCONT; the ratio is the stopped median over the median of the answering ones.
Target (issue 15, stuck QEMU): <= 1.5. Also prints both medians and the one sweep
that first met the stopped QEMU, which waits out the stats deadline once.
"""

from __future__ import annotations

import statistics
import sys
import time

import libvirt

from appliance.backends.vm.libvirt_backend import SYSTEM_URI, LibvirtBackend
from appliance.services.monitor import Monitor
from tests.support.demo_vms import demo_vms
from tests.support.stuck_qemu import stopped_qemu

VMS = 3
RUNS = 15
PAUSE_S = 0.3  # between sweeps, as the daemon's interval leaves QEMU time to run
TARGET_RATIO = 1.5
DEADLINE_S = 2.0
UNRESPONSIVE_AFTER_S = 3.0


def _sweeps(monitor: Monitor) -> list[float]:
    times = []
    for _ in range(RUNS):
        times.append(monitor.sweep().sweep_ms)
        time.sleep(PAUSE_S)
    return times


def _wait_stats(monitor: Monitor, uuids: list[str]) -> None:
    end = time.monotonic() + 120
    while time.monotonic() < end:
        snap = monitor.sweep()
        if all(u in snap.vms and snap.vms[u].cpu_time_ns > 0 for u in uuids):
            return
        time.sleep(0.5)
    raise SystemExit("the demo VMs never reported stats")


def main() -> int:
    try:
        libvirt.open(SYSTEM_URI).close()
    except libvirt.libvirtError as err:
        print(f"stuck_qemu needs libvirtd ({SYSTEM_URI}): {err}", file=sys.stderr)
        return 2
    with demo_vms("bench-stuck", VMS) as vms:
        names = [vm.name for vm in vms]
        uuids = [vm.uuid for vm in vms]
        monitor = Monitor(
            LibvirtBackend(SYSTEM_URI, "qemu"),
            history_samples=10,
            stats_deadline_s=DEADLINE_S,
            unresponsive_after_s=UNRESPONSIVE_AFTER_S,
        )
        _wait_stats(monitor, uuids)
        answering = _sweeps(monitor)
        with stopped_qemu(names[0]):
            first_ms = monitor.sweep().sweep_ms
            end = time.monotonic() + 60
            while uuids[0] not in monitor.sweep().unresponsive:
                if time.monotonic() > end:
                    raise SystemExit("the stopped QEMU was never found unresponsive")
                time.sleep(PAUSE_S)
            stuck = _sweeps(monitor)
            still = monitor.snapshot.unresponsive
        answering += _sweeps(monitor)
    base_ms = statistics.median(answering)
    stuck_ms = statistics.median(stuck)
    ratio = stuck_ms / base_ms
    print(f"stuck_qemu_sweep_ms: {stuck_ms:.1f} ms")
    print(f"stuck_qemu_baseline_sweep_ms: {base_ms:.1f} ms")
    print(f"stuck_qemu_first_sweep_ms: {first_ms:.1f} ms")
    print(f"stuck_qemu_sweep_ratio: {ratio:.2f} ratio")
    ok = ratio <= TARGET_RATIO and uuids[0] in still
    if not ok:
        print(
            f"MISSED: ratio <= {TARGET_RATIO} with the stopped VM shown unresponsive "
            f"(shown: {sorted(still)})",
            file=sys.stderr,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
