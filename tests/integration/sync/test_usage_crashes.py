"""Usage through crashes: the appliance killed (SIGKILL) at random points and restarted
on its state, the WAN cut for part of the run, the journal compacted before what it
dropped was shipped; afterwards the node's report and the registry's equal each other
and a reference worked out from the journal itself.

Two tenants' VMs start, a GPU apply drains one of them off its MIG slice, a tenant's
process claims a slice, VMs stop and start again. The kills come while a VM's create
and start, a GPU apply with its drain, a VM's stop and a compaction are under way,
after a delay drawn from a seeded random.Random (the seed is in every failure message;
set TOWERBOX_CRASH_SEED to replay one). A request cut by the kill may or may not have
happened: the test then reads the node's state and does what is still missing, as an
operator would. The libvirt test driver's domains live in the daemon's process, so a
kill takes them along: the restarted daemon journals them missing, and the operator
deletes and re-creates those VMs.

The reference (usage_reference.py) reads the whole journal: the registry's copy, plus
what each compaction dropped before it could be shipped (copied in the compaction's
transaction). That union must have every seq once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.integration.sync import usage_reference
from tests.integration.sync.lab import Lab

pytestmark = pytest.mark.root
log = logging.getLogger(__name__)
HOUR = dt.timedelta(hours=1)
KILL_WITHIN_S = 0.04
GPU_QUOTAS = {"gpu_slices": {"1g.10gb": 2, "2g.20gb": 2}, "gpu_compute_slices": 4}
# H100 layouts the apply moves between: each has two free 1g.10gb slices and two
# 2g.20gb ones, and the one a VM sits on changes in the next (so it is drained).
LAYOUTS = {
    0: [("1g.10gb", 0), ("1g.10gb", 1), ("2g.20gb", 2), ("2g.20gb", 4)],
    2: [("2g.20gb", 0), ("1g.10gb", 2), ("1g.10gb", 3), ("2g.20gb", 4)],
    4: [("2g.20gb", 0), ("2g.20gb", 2), ("1g.10gb", 4), ("1g.10gb", 5)],
}


def _layout(instances: list[tuple[str, int]]) -> dict[str, Any]:
    return {"instances": [{"profile": p, "start": s} for p, s in instances]}


@dataclass
class Wanted:
    """What the operator wants the node to hold; converge() makes it so."""

    gpu: str
    layout: list[tuple[str, int]]
    vms: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> spec
    running: set[str] = field(default_factory=set)
    claims: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> tenant, profile


class Run:
    """The scenario's driver: the lab, the seeded draws and what happened, for messages."""

    def __init__(self, lab: Lab, seed: int) -> None:
        self.lab = lab
        self.seed = seed
        self.rng = random.Random(seed)
        self.events: list[str] = []
        self.copies: list[dict[str, Any]] = []  # entries as each compaction found them
        self.kills = 0

    def why(self) -> str:
        return f"seed {self.seed}; " + "; ".join(self.events)

    def client(self) -> httpx.Client:
        return self.lab.daemon.http(self.lab.admin_token)

    def ok(self, resp: httpx.Response, *status: int) -> Any:
        assert resp.status_code in (status or (200,)), f"{resp.text} ({self.why()})"
        return resp.json() if resp.content else None

    def kill_during(self, what: str, action: Callable[[], object]) -> None:
        """Run ``action`` in a thread, SIGKILL the daemon after a random delay (the
        action may be done by then, or not begun), restart it on the same state.

        Each of the actions takes some 10-50 ms here, so the delay is drawn from that
        range: most kills land in the request, some before or after it.
        """
        outcome: list[str] = []

        def go() -> None:
            began = time.monotonic()
            try:
                action()
                outcome.append(f"done in {time.monotonic() - began:.3f} s")
            except Exception as err:  # recorded: the next converge redoes what it must
                outcome.append(f"cut ({type(err).__name__}: {str(err)[:200]})")

        delay = round(self.rng.uniform(0, KILL_WITHIN_S), 3)
        worker = threading.Thread(target=go, daemon=True)
        worker.start()
        time.sleep(delay)
        self.lab.daemon.kill()
        worker.join(timeout=60)
        self.kills += 1
        self.events.append(f"killed {delay} s into {what}: {outcome[0] if outcome else 'hung'}")
        self.lab.daemon.restart()

    # -- the operator ------------------------------------------------------------------

    def converge(self, want: Wanted) -> None:
        """Bring the node to ``want`` from whatever state it is in."""
        with self.client() as c:
            # VMs' slices are listed too (owned by the VM's name): those follow the VMs.
            owners = [x["owner"] for x in self.ok(c.get("/api/v1/gpus/claims"))]
            held = [o for o in owners if o.startswith("process:")]
            for owner in held:
                tenant, _, name = owner.removeprefix("process:").partition("/")
                if name not in want.claims:
                    resp = c.delete(f"/api/v1/gpus/claims/{name}", params={"tenant": tenant})
                    self.ok(resp, 204)
            vms = {v["name"]: v for v in self.ok(c.get("/api/v1/vms"))}
            for name, vm in list(vms.items()):
                # A VM whose domain went with the killed daemon is deleted and made again.
                if name not in want.vms or vm["state"] == "missing":
                    self.ok(c.delete(f"/api/v1/vms/{name}"), 200, 204)
                    del vms[name]
                elif name not in want.running and vm["state"] != "shutoff":
                    self.ok(c.post(f"/api/v1/vms/{name}/stop"))
            layout = self.ok(c.get(f"/api/v1/gpus/{want.gpu}"))["layout"]["instances"]
            if sorted((i["profile"], i["start"]) for i in layout) != sorted(want.layout):
                done = self.ok(c.post(f"/api/v1/gpus/{want.gpu}/apply", json=_layout(want.layout)))
                self.events.append(f"applied, drained {done['drain']['owners']}")
            for name, spec in want.vms.items():
                vm = vms.get(name)
                if vm is None:
                    body = {"name": name, "appliance": "demo", "spec": spec}
                    self.ok(
                        c.post("/api/v1/vms", json={**body, "start": name in want.running}), 201
                    )
                elif name in want.running and vm["state"] != "running":
                    self.ok(c.post(f"/api/v1/vms/{name}/start"))
            for name, (tenant, profile) in want.claims.items():
                if f"process:{tenant}/{name}" not in held:
                    claim = {"name": name, "profile": profile, "tenant": tenant}
                    self.ok(c.post("/api/v1/gpus/claims", json=claim), 201)

    def reshape(self, want: Wanted, killed_as: str | None = None) -> None:
        """Move the GPU to the layout that changes llm's slice: an apply that drains it,
        with the daemon killed while it runs when ``killed_as`` names the kill."""
        with self.client() as c:
            claims = self.ok(c.get("/api/v1/gpus/claims"))
            want.layout = LAYOUTS[next(x["start"] for x in claims if x["owner"] == "llm")]
            if killed_as is not None:
                url = f"/api/v1/gpus/{want.gpu}/apply"
                apply = _layout(want.layout)
                self.kill_during(killed_as, lambda: self.ok(c.post(url, json=apply)))
        self.converge(want)

    def compact(self) -> int:
        return self.lab.compact_all(copy_into=self.copies)


def _seed() -> int:
    return int(os.environ.get("TOWERBOX_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))


def _setup(run: Run) -> Wanted:
    with run.client() as c:
        for tenant in ("acme", "beta"):
            run.ok(c.post("/api/v1/tenants", json={"name": tenant}), 201)
            quotas = {"process_claims": 1, **GPU_QUOTAS}
            run.ok(c.put(f"/api/v1/tenants/{tenant}/quotas", json=quotas))
        gpu = run.ok(c.get("/api/v1/gpus"))["gpus"][0]["uuid"]
    want = Wanted(gpu=gpu, layout=LAYOUTS[4])
    run.converge(want)
    return want


def _scenario(run: Run) -> None:
    lab = run.lab
    want = _setup(run)
    # acme's VM: the daemon is killed while its create and start are under way.
    want.vms["web"] = {"role": "b2b", "vcpus": 2, "memory_mib": 512, "tenant": "acme"}
    want.running.add("web")
    with run.client() as c:
        body = {"name": "web", "appliance": "demo", "spec": want.vms["web"], "start": True}
        run.kill_during(
            "web's create and start", lambda: run.ok(c.post("/api/v1/vms", json=body), 201)
        )
    run.converge(want)
    # beta's VM on a 2g.20gb slice, acme's process on a 1g.10gb one.
    want.vms["llm"] = {"role": "b2b", "vcpus": 1, "memory_mib": 256, "tenant": "beta"}
    want.vms["llm"]["gpu"] = {"profile": "2g.20gb"}
    want.running.add("llm")
    want.claims["train"] = ("acme", "1g.10gb")
    run.converge(want)
    time.sleep(0.5)
    with run.client() as c:  # a tenant looks at its usage: the node's ledger is built
        run.ok(c.get("/api/v1/usage", params={"tenant": "acme"}))

    # The WAN goes down: what follows ships late, some of it only as a rollup.
    lab.wan.cut(lab.registry.port)
    del want.claims["train"]  # an apply never drains a process: its claim goes first
    run.converge(want)
    run.reshape(want, killed_as="a GPU apply draining llm")
    want.claims["train"] = ("acme", "1g.10gb")
    run.converge(want)
    want.running.discard("web")
    with run.client() as c:
        run.kill_during("web's stop", lambda: run.ok(c.post("/api/v1/vms/web/stop")))
    run.converge(want)
    time.sleep(0.5)
    want.running.add("web")
    run.converge(want)
    time.sleep(0.5)
    run.kill_during("a compaction", run.compact)
    run.converge(want)
    time.sleep(0.5)
    assert lab.wan.dropped() > 0, f"the WAN cut dropped nothing ({run.why()})"
    lab.wan.heal()

    # Back online: another drain (one the daemon lives through, so there is always
    # one), a tenant's look at its usage, a stop and a start, then a compaction on the
    # live daemon that drops both before its ledger read them.
    del want.claims["train"]
    run.converge(want)
    run.reshape(want)
    with run.client() as c:
        run.ok(c.get("/api/v1/usage", params={"tenant": "beta"}))
    want.running.discard("llm")
    run.converge(want)
    time.sleep(0.5)
    want.running.add("llm")
    run.converge(want)
    time.sleep(0.5)
    run.compact()
    # Everything goes: nothing is open when the reports are compared.
    want.vms.clear()
    want.running.clear()
    run.converge(want)


def _wait_shipped(run: Run, timeout: float = 90) -> int:
    lab = run.lab
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with run.client() as local:
                head = local.get("/api/v1/sync/status").json()["head"]
            with lab.registry.operator() as op:
                held = op.get(f"/api/v1/sites/{lab.site}").json()["acked_seq"]
        except httpx.HTTPError:
            time.sleep(0.3)
            continue
        if head and held == head:
            return int(held)
        time.sleep(0.3)
    raise AssertionError(f"the registry never caught up ({run.why()}):\n{lab.agent.log()}")


def _registry_journal(run: Run) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with run.lab.registry.operator() as op:
        while True:
            params = {"after": found[-1]["seq"] if found else 0, "limit": 5000}
            page = run.ok(op.get(f"/api/v1/sites/{run.lab.site}/journal", params=params))
            if not page["entries"]:
                return found
            found += page["entries"]


def _whole_journal(run: Run, head: int) -> list[dict[str, Any]]:
    """The registry's entries and those compactions dropped, checked to be one journal:
    every seq up to the head once, the same entry wherever two copies hold it."""
    shipped = _registry_journal(run)
    seqs = [e["seq"] for e in shipped]
    assert len(seqs) == len(set(seqs)), f"the registry holds an entry twice ({run.why()})"
    with run.lab.registry.operator() as op:
        page = run.ok(op.get(f"/api/v1/sites/{run.lab.site}/journal", params={"limit": 1}))
    compacted = page["compacted_through"]
    # Gaps only where the node compacted before the agent could ship (the WAN was
    # cut then, so there are some): above that bound every seq is there.
    missing = sorted(set(range(1, head + 1)) - set(seqs))
    assert missing, f"no entry was compacted before it shipped ({run.why()})"
    assert missing[-1] <= compacted, (
        f"the registry lacks {missing[:10]} above its compaction bound {compacted} ({run.why()})"
    )
    whole = {e["seq"]: e for e in run.copies}
    for e in shipped:
        known = whole.setdefault(e["seq"], e)
        assert _same(known, e), f"two versions of entry {e['seq']}: {known} {e} ({run.why()})"
    assert sorted(whole) == list(range(1, head + 1)), (
        f"entries lost: {sorted(set(range(1, head + 1)) - set(whole))[:10]} ({run.why()})"
    )
    return [whole[seq] for seq in sorted(whole)]


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def at(e: dict[str, Any]) -> int:
        return usage_reference.time_us(e["created_at"])

    fields = ("seq", "kind", "object_type", "object_id", "state")
    return all(a[f] == b[f] for f in fields) and at(a) == at(b)


def _period(started: dt.datetime, ended: dt.datetime, group_by: str) -> dict[str, str]:
    return {
        "from": started.replace(minute=0, second=0, microsecond=0).isoformat(),
        "to": (ended.replace(minute=0, second=0, microsecond=0) + HOUR).isoformat(),
        "group_by": group_by,
    }


def _without_site(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in x.items() if k != "site"} for x in report["lines"]]


def test_usage_survives_kills_wan_cuts_and_compaction(lab: Lab) -> None:
    run = Run(lab, _seed())
    started = dt.datetime.now(dt.UTC)
    lab.agent.start()
    _scenario(run)
    head = _wait_shipped(run)
    ended = dt.datetime.now(dt.UTC)
    log.info("crash run: %s", run.why())  # shown with -o log_cli=true, pass or fail
    assert run.kills >= 3, run.why()

    journal = _whole_journal(run, head)
    expected = usage_reference.usage(journal)
    assert expected.still_held == {}, f"held at the end: {expected.still_held} ({run.why()})"
    kinds = {e["kind"] for e in journal}
    wanted = {"vm.drained", "usage.rollup", "gpu.instance_bound", "vm.created"}
    assert wanted <= kinds, f"the scenario missed {wanted - kinds} ({run.why()})"
    for by_hour, group_by in ((True, "hour"), (False, "total")):
        period = _period(started, ended, group_by)
        with run.client() as local:
            node = run.ok(local.get("/api/v1/usage", params=period))
        with lab.registry.operator() as op:
            fleet = run.ok(op.get("/api/v1/usage", params={**period, "site": lab.site}))
        reference = usage_reference.lines(expected, by_hour)
        assert node["lines"] == reference, f"node != reference by {group_by} ({run.why()})"
        assert _without_site(fleet) == reference, f"registry != reference ({run.why()})"
        assert fleet["sites"][0]["acked_seq"] == head
    resources = {(x["tenant"], x["resource"]) for x in reference}
    assert {("acme", "vcpu"), ("acme", "mig:1g.10gb"), ("beta", "mig:2g.20gb")} <= resources
