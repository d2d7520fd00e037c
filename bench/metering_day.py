"""metering_error_s: a scripted 24 h day against the node's usage report.

One process drives the appliance through its API on an accelerated clock (the
journal's): 50 tenant VMs started and stopped at random minutes, 4 of them on MIG
slices of the simulated H100, 6 GPU reshapes that drain and restart those VMs, 3
VMs crashed behind the node's back (found by the monitor), 3 restarts of the
metering service (a daemon crash: it rebuilds from the journal) and a compaction
with a rollup. The script keeps its own record of who ran and who held a slice
when; the figure is the total absolute difference, in unit-seconds, between that
reference and the node's report (vCPU-, GiB- and slice-seconds). Target: 0.

The WAN outage of the issue's day is the registry's side (a node meters offline
the same way); the registry's figures are compared with the node's elsewhere.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import libvirt
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.context import Appliance, build_appliance
from appliance.services.metering import MeteringService
from appliance.store import journal
from appliance.store.compaction import compact
from tests.support.appliance import admin_password, login, make_config

VMS = 50
GPU_VMS = 4
RESHAPES = 6
CRASHES = 3
RESTARTS = 3
SEED = 20261130
PASSWORD = "bench-metering-password"  # noqa: S105 - a throwaway node's test user
# Two layouts that both keep at least GPU_VMS 1g.10gb slices, in other places.
LAYOUTS = (
    {"counts": {"1g.10gb": 7}},
    {"counts": {"1g.10gb": 4, "3g.40gb": 1}},
)


class Clock:
    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        self.t0 = now + dt.timedelta(days=2)
        self.now = self.t0

    def __call__(self) -> dt.datetime:
        return self.now


class Reference:
    """What the script knows it did: (tenant, resource) -> unit-seconds."""

    def __init__(self) -> None:
        self.since: dict[str, dt.datetime] = {}
        self.totals: dict[tuple[str, str], float] = defaultdict(float)

    def start(self, name: str, at: dt.datetime) -> None:
        self.since[name] = at

    def stop(
        self, name: str, at: dt.datetime, tenant: str, vcpus: int, mem: int, gpu: bool
    ) -> None:
        began = self.since.pop(name, None)
        if began is None:
            return
        seconds = (at - began).total_seconds()
        self.totals[(tenant, "vcpu")] += vcpus * seconds
        self.totals[(tenant, "memory_gib")] += mem / 1024 * seconds
        if gpu:
            self.totals[(tenant, "mig:1g.10gb")] += seconds


def _ok(resp: Any, status: int = 200) -> Any:
    if resp.status_code != status:
        raise RuntimeError(
            f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
        )
    return resp.json() if resp.content else None


class Day:
    """The scripted day: the node, its API client, the VMs and the reference."""

    def __init__(self, app: Appliance, c: TestClient[Any], clock: Clock) -> None:
        self.app, self.c, self.clock = app, c, clock
        self.ref = Reference()
        self.rng = random.Random(SEED)
        self.admin = login(c, "admin", admin_password(app.cfg))
        self.gpu = _ok(c.get("/api/v1/gpus", headers=self.admin))["gpus"][0]["uuid"]
        self.layout = 0
        self.headers: dict[str, dict[str, str]] = {}
        self.vms: dict[str, dict[str, Any]] = {}
        self.conn = libvirt.open("test:///default")

    def prepare(self) -> None:
        c, admin = self.c, self.admin
        _ok(c.post(f"/api/v1/gpus/{self.gpu}/apply", headers=admin, json=LAYOUTS[0]))
        quotas = {
            "vms": -1,
            "vcpus": -1,
            "memory_mib": -1,
            "gpu_slices": {"1g.10gb": -1},
            "gpu_compute_slices": -1,
        }
        for tenant in ("acme", "beta"):
            _ok(c.post("/api/v1/tenants", headers=admin, json={"name": tenant}), 201)
            _ok(c.put(f"/api/v1/tenants/{tenant}/quotas", headers=admin, json=quotas))
            user = {
                "username": f"{tenant}-admin",
                "password": PASSWORD,
                "role": "tenant-admin",
                "tenant": tenant,
            }
            _ok(c.post("/api/v1/users", headers=admin, json=user), 201)
            self.headers[tenant] = login(c, f"{tenant}-admin", PASSWORD)
        for i in range(VMS):
            tenant = ("acme", "beta")[i % 2]
            spec: dict[str, Any] = {
                "role": "b2b",
                "vcpus": 1 + i % 3,
                "memory_mib": 128 * (1 + i % 4),
            }
            if i < GPU_VMS:
                spec["gpu"] = {"profile": "1g.10gb"}
            name = f"vm{i:02d}"
            body = {"name": name, "appliance": "demo", "spec": spec}
            _ok(c.post("/api/v1/vms", headers=self.headers[tenant], json=body), 201)
            self.vms[name] = {
                "tenant": tenant,
                "vcpus": spec["vcpus"],
                "mem": spec["memory_mib"],
                "gpu": i < GPU_VMS,
                "on": False,
            }

    def events(self) -> dict[int, list[str]]:
        """The day in minutes: what happens at which minute."""
        rng = self.rng
        events: dict[int, list[str]] = defaultdict(list)
        for what, count, first, last in (
            ("toggle", 400, 1, 1440),
            ("reshape", RESHAPES, 60, 1380),
            ("crash", CRASHES, 60, 1380),
            ("restart", RESTARTS, 60, 1380),
        ):
            for minute in rng.sample(range(first, last), count):
                events[minute].append(what)
        events[720].append("compact")
        return events

    def run(self) -> dict[str, Any]:
        handlers = {
            "toggle": self.toggle,
            "reshape": self.reshape,
            "crash": self.crash,
            "restart": self.restart,
            "compact": self.compact,
        }
        events = self.events()
        for minute in sorted(events):
            offset = dt.timedelta(minutes=minute, seconds=self.rng.randrange(60))
            self.clock.now = self.clock.t0 + offset
            for what in events[minute]:
                handlers[what]()
        self.conn.close()
        self.clock.now = self.clock.t0 + dt.timedelta(hours=24)
        for name, v in self.vms.items():
            if v["on"]:
                self.stop_ref(name)
        period = {"from": self.clock.t0.isoformat(), "to": self.clock.now.isoformat()}
        report: dict[str, Any] = _ok(self.c.get("/api/v1/usage", headers=self.admin, params=period))
        return report

    def stop_ref(self, name: str) -> None:
        v = self.vms[name]
        self.ref.stop(name, self.clock.now, v["tenant"], v["vcpus"], v["mem"], v["gpu"])
        v["on"] = False

    def toggle(self) -> None:
        name = self.rng.choice(sorted(self.vms))
        v = self.vms[name]
        action = "stop" if v["on"] else "start"
        _ok(self.c.post(f"/api/v1/vms/{name}/{action}", headers=self.headers[v["tenant"]]))
        if v["on"]:
            self.stop_ref(name)
        else:
            self.ref.start(name, self.clock.now)
            v["on"] = True

    def reshape(self) -> None:
        # Drained VMs go off and come back at this same instant: their slices count on.
        self.layout = 1 - self.layout
        url = f"/api/v1/gpus/{self.gpu}/apply"
        _ok(self.c.post(url, headers=self.admin, json=LAYOUTS[self.layout]))
        for name, v in self.vms.items():
            state = _ok(self.c.get(f"/api/v1/vms/{name}", headers=self.admin))["state"]
            if v["on"] and state != "running":
                raise RuntimeError(f"{name} did not come back after the reshape")

    def crash(self) -> None:
        running = [n for n, v in self.vms.items() if v["on"]]
        if not running:
            return
        name = self.rng.choice(running)
        vm_id = _ok(self.c.get(f"/api/v1/vms/{name}", headers=self.admin))["id"]
        self.conn.lookupByUUIDString(vm_id).destroy()  # QEMU died
        self.app.monitor_job()  # the sweep finds it at this minute
        self.stop_ref(name)
        # Its desired state is still running: an operator stops it, so that the
        # reconciler does not start it again behind the script's back.
        tenant = self.headers[self.vms[name]["tenant"]]
        _ok(self.c.post(f"/api/v1/vms/{name}/stop", headers=tenant))

    def restart(self) -> None:
        self.app.metering = MeteringService()  # a daemon crash: rebuilt from the journal

    def compact(self) -> None:
        with journal.acting_as(journal.NODE_ACTOR):
            compact(0, 365, before=self.app.metering.write_rollup)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="towerbox-bench-metering-"))
    cfg = make_config(
        work,
        TOWERBOX_GPU_BACKEND="simulated",
        TOWERBOX_N6_BACKEND="simulated",
        TOWERBOX_GPU_DRAIN_TIMEOUT_S="1",
    )
    clock = Clock()
    previous_clock = journal.set_clock(clock)
    app = build_appliance(cfg)
    try:
        with TestClient(create_app(app)) as c:
            day = Day(app, c, clock)
            day.prepare()
            report = day.run()
    finally:
        journal.set_clock(previous_clock)
        app.close()
        shutil.rmtree(work, ignore_errors=True)
    return _compare(report, day.ref)


def _compare(report: dict[str, Any], ref: Reference) -> int:
    reported = {
        (line["tenant"], line["resource"]): line["seconds"]
        for line in report["lines"]
        if line["resource"] in ("vcpu", "memory_gib", "mig:1g.10gb")
    }
    keys = set(reported) | set(ref.totals)
    error = sum(abs(reported.get(k, 0.0) - ref.totals.get(k, 0.0)) for k in keys)
    slice_s = sum(v for k, v in ref.totals.items() if k[1].startswith("mig:"))
    vcpu_s = sum(v for k, v in ref.totals.items() if k[1] == "vcpu")
    print(f"metering_reference_slice_s: {slice_s:.0f} s")
    print(f"metering_reference_vcpu_s: {vcpu_s:.0f} s")
    print(f"metering_error_s: {error:.6f} s")
    if error > 1e-3:
        for k in sorted(keys):
            got, want = reported.get(k, 0.0), ref.totals.get(k, 0.0)
            print(f"  {k}: reported {got:.3f} reference {want:.3f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
