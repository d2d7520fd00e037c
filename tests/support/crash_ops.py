"""The operations crash runs kill: each with its fault points, its setup, the request
the kill cuts and what the operator does afterwards (``finish``), which must always
reach the state the request asked for."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.appliance import REPO
from tests.support.artifact_server import LLM_ENTRY
from tests.support.crash import Node, Operation
from tests.support.desired import ACME

WEB: dict[str, Any] = {"name": "web", "appliance": "demo", "spec": {"vcpus": 1, "memory_mib": 256}}
# Web on the fixture host (tests/support/appliance.py: two NUMA nodes, 2M hugepages, an
# E810 with VFs): a pinned core, hugepages and a VF, so that the allocations a crash
# must leave in step with the rows are not all empty. A real host (test_crash_real.py)
# may have neither hugepages nor that NIC: there web is the plain VM.
WEB_HELD = {
    **WEB,
    "spec": {
        **WEB["spec"],
        "cpu": {"policy": "pinned"},
        "hugepages": "2M",
        "nics": [{"kind": "sriov", "pf": "ens1f0"}],
    },
}
LLM_SPEC = {"role": "b2b", "vcpus": 1, "memory_mib": 256, "gpu": {"profile": "2g.20gb"}}
# H100 layouts: llm's 2g.20gb slice at start 4 in the first, gone in the second.
BEFORE = [("1g.10gb", 0), ("1g.10gb", 1), ("2g.20gb", 2), ("2g.20gb", 4)]
AFTER = [("2g.20gb", 0), ("2g.20gb", 2), ("1g.10gb", 4), ("1g.10gb", 5)]
VNETS = [
    {"tenant": "acme", "name": "llm", "trunk": "br-n6", "vlan": 100, "subnet": "10.100.0.0/24",
     "gateway": "10.100.0.1", "ue_pools": ["10.45.0.0/16"]},
    {"tenant": "beta", "name": "cams", "trunk": "br-n6", "vlan": 200, "subnet": "10.200.0.0/24",
     "gateway": "10.200.0.1", "ue_pools": ["10.46.0.0/16"]},
]  # fmt: skip


def _vms(node: Node) -> dict[str, Any]:
    return {v["name"]: v for v in node.get("/api/v1/vms")}


def ensure_vm(node: Node, body: dict[str, Any]) -> None:
    """The VM exists and runs: one whose domain went with the killed daemon (the test
    driver's domains live in its process) is deleted and made again."""
    name = body["name"]
    vm = _vms(node).get(name)
    with node.client() as c:
        if vm is not None and vm["state"] == "missing":
            node.ok(c.delete(f"/api/v1/vms/{name}"), 200, 204)
            vm = None
        if vm is None:
            node.ok(c.post("/api/v1/vms", json={**body, "start": True}), 201)
        elif vm["state"] != "running":
            node.ok(c.post(f"/api/v1/vms/{name}/start"))


def ensure_gone(node: Node, name: str) -> None:
    if name in _vms(node):
        with node.client() as c:
            node.ok(c.delete(f"/api/v1/vms/{name}"), 200, 204)


def _running(node: Node, name: str) -> list[str]:
    state = _vms(node).get(name, {}).get("state")
    return [] if state == "running" else [f"VM {name} is {state}, not running"]


# -- VM create and delete -------------------------------------------------------------


def web(node: Node) -> dict[str, Any]:
    """Web as this node's host allows (``WEB_HELD`` on the fixture host)."""
    return WEB if Path(node.cfg.host.sysfs_root) == Path("/sys") else WEB_HELD


def _create(node: Node) -> None:
    with node.client() as c:
        node.ok(c.post("/api/v1/vms", json={**web(node), "start": True}), 201)


VM_CREATE = Operation(
    name="vm_create",
    points=(
        "vm.create.after_overlay",
        "vm.create.before_define",
        "vm.create.after_define",
        "vm.create.before_commit",
        "vm.create.after_commit",
        "vm.create.after_start",
    ),
    act=_create,
    finish=lambda node: ensure_vm(node, web(node)),
    done=lambda node: _running(node, "web"),
)


def _delete(node: Node) -> None:
    with node.client() as c:
        node.ok(c.delete("/api/v1/vms/web"), 200, 204)


VM_DELETE = Operation(
    name="vm_delete",
    points=("vm.delete.after_destroy", "vm.delete.after_undefine", "vm.delete.after_disks"),
    setup=lambda node: ensure_vm(node, web(node)),
    act=_delete,
    finish=lambda node: ensure_gone(node, "web"),
    done=lambda node: ["VM web is still there"] if "web" in _vms(node) else [],
)


# -- GPU apply with a drain -------------------------------------------------------------


def _layout(instances: list[tuple[str, int]]) -> dict[str, Any]:
    return {"instances": [{"profile": p, "start": s} for p, s in instances]}


def _gpu(node: Node) -> str:
    return str(node.get("/api/v1/gpus")["gpus"][0]["uuid"])


def _apply(node: Node, layout: list[tuple[str, int]]) -> None:
    with node.client() as c:
        node.ok(c.post(f"/api/v1/gpus/{_gpu(node)}/apply", json=_layout(layout)))


LLM = {"name": "llm", "appliance": "demo", "spec": LLM_SPEC}


def _gpu_finish(node: Node) -> None:
    layout = node.get(f"/api/v1/gpus/{_gpu(node)}")["layout"]["instances"]
    if sorted((i["profile"], i["start"]) for i in layout) != sorted(AFTER):
        _apply(node, AFTER)
    ensure_vm(node, LLM)


GPU_APPLY = Operation(
    name="gpu_apply",
    points=(
        "gpu.apply.after_drain",
        "gpu.apply.after_destroy",
        "gpu.apply.before_commit",
        "gpu.apply.after_commit",
    ),
    prepare=lambda node: _apply(node, BEFORE),
    setup=lambda node: ensure_vm(node, LLM),
    act=lambda node: _apply(node, AFTER),
    finish=_gpu_finish,
    done=lambda node: _running(node, "llm"),
)


# -- N6 apply -----------------------------------------------------------------------------


def n6_apply_operation(
    trunk: str,
    trunk_body: dict[str, Any],
    vnets: list[dict[str, Any]],
    *,
    name: str = "n6_apply",
    env: dict[str, str] | None = None,
    host_check: Callable[[Node], list[str]] = lambda node: [],
) -> Operation:
    """An N6 apply of a second VNet on a trunk whose first one is applied: killed
    between its steps, then applied again; afterwards nothing is left to plan and
    ``host_check`` (what the host's switch holds) finds nothing wrong."""

    def setup(node: Node) -> None:
        with node.client() as c:
            for tenant in sorted({v["tenant"] for v in vnets}):
                node.ok(c.post("/api/v1/tenants", json={"name": tenant}), 201)
            node.ok(c.put(f"/api/v1/n6/trunks/{trunk}", json=trunk_body))
            node.ok(c.post("/api/v1/n6/vnets", json=vnets[0]), 201)
            node.ok(c.post("/api/v1/n6/apply"))
            node.ok(c.post("/api/v1/n6/vnets", json=vnets[1]), 201)

    return Operation(
        name=name,
        # The first steps are the start's re-apply of what was applied before (the
        # simulated N6 state lives in the daemon's process), the later ones the request's.
        points=tuple(f"n6.apply.after_step:{n}" for n in (2, 6, 11, 12, 14, 16)),
        prepare=setup,
        act=_n6_apply,
        finish=_n6_apply,
        done=lambda node: _n6_planned(node) + host_check(node),
        env=env or {},
    )


def _n6_apply(node: Node) -> None:
    with node.client() as c:
        node.ok(c.post("/api/v1/n6/apply"))


def _n6_planned(node: Node) -> list[str]:
    with node.client() as c:
        changes = node.ok(c.post("/api/v1/n6/plan"))["changes"]
    left = [line for lines in changes.values() for line in lines]
    return [f"N6 still plans {left} after its apply"] if left else []


N6_APPLY = n6_apply_operation("br-n6", {"kind": "ovs", "ports": ["ens2f0"]}, VNETS)


# -- journal compaction -------------------------------------------------------------------


# Under the API's rate limit (50 requests a second, a burst of 200): an answer takes
# some 2 ms, and an unpaced churn is refused (429) before the kill.
CHURN_EVERY_S = 0.025


def _churn(node: Node) -> None:
    """Journal entries while the compaction job runs every few tenths of a second."""
    end = time.monotonic() + 1.5
    with node.client() as c:
        while time.monotonic() < end:
            node.ok(c.post("/api/v1/tenants", json={"name": f"t{time.monotonic_ns()}"}), 201)
            time.sleep(CHURN_EVERY_S)


def _compacted(node: Node) -> list[str]:
    with node.db() as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'journal_compacted_through'")
        found = row.fetchone()
    return [] if found and int(found[0]) > 0 else ["the journal was never compacted"]


COMPACTION = Operation(
    name="compaction",
    points=("journal.compact.before_delete", "journal.compact.before_commit"),
    env={"TOWERBOX_JOURNAL_KEEP_ENTRIES": "3", "TOWERBOX_JOURNAL_COMPACT_INTERVAL_S": "0.3"},
    act=_churn,
    finish=_churn,
    done=_compacted,
)


# -- a desired-state document --------------------------------------------------------------

TENANTS_DOC = {
    "kind": "tenants",
    "etag": "e1",
    "version": 1,
    "source": "registry",
    "document": {"tenants": {"acme": {k: v for k, v in ACME.items() if k != "vnets"}}},
}


def _desired(node: Node) -> None:
    with node.client() as c:
        node.ok(c.post("/api/v1/desired/tenants", json=TENANTS_DOC))


def _desired_applied(node: Node) -> list[str]:
    tenant = node.get("/api/v1/tenants/acme")
    if tenant.get("quotas", {}).get("vms") != ACME["quotas"]["vms"]:
        return [f"tenant acme is not as the document says: {tenant}"]
    return []


DESIRED_APPLY = Operation(
    name="desired_apply",
    points=("desired.apply.before_objects", "desired.apply.before_record"),
    act=_desired,
    finish=_desired,
    done=_desired_applied,
)


# -- an artifact fetch -------------------------------------------------------------------


def artifact_operation(url: str, data: bytes, work: Path) -> Operation:
    """A fetch of ``model.bin`` (``data``, served at ``url``), named by a catalog made
    in ``work``; a published file must be whole and verified."""
    sha = hashlib.sha256(data).hexdigest()
    catalog = work / "catalog"
    catalog.mkdir()
    shutil.copy(REPO / "images" / "catalog" / "demo.toml", catalog)
    shutil.copytree(REPO / "images" / "cloud-init", work / "cloud-init")
    (catalog / "llm.toml").write_text(
        LLM_ENTRY.format(url=url, sha=sha, size=len(data), wrong="0" * 64)
    )

    def fetch(node: Node) -> None:
        with node.client() as c:
            node.ok(c.post("/api/v1/artifacts/model.bin/fetch"), 202)
        _wait_fetched(node)

    def published(node: Node) -> list[str]:
        path = Path(node.cfg.image_dir) / "model.bin"
        if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            return ["model.bin is visible but not the artifact"]
        return []

    return Operation(
        name="artifact_fetch",
        points=(
            "artifact.fetch.chunk:2",
            "artifact.fetch.chunk:4",
            "artifact.fetch.before_publish",
        ),
        env={"TOWERBOX_CATALOG_DIR": str(catalog), "TOWERBOX_ARTIFACTS_RETRIES": "0"},
        act=fetch,
        finish=fetch,
        check=published,
        done=lambda node: published(node) or ([] if _present(node) else ["model.bin absent"]),
    )


def _present(node: Node) -> bool:
    return (Path(node.cfg.image_dir) / "model.bin").is_file()


def _wait_fetched(node: Node) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        listing = node.get("/api/v1/artifacts")["artifacts"]
        if any(a["name"] == "model.bin" and a["state"] in ("present", "verified") for a in listing):
            return
        time.sleep(0.05)
    raise AssertionError(f"model.bin never fetched: {node.get('/api/v1/artifacts/fetches')}")
