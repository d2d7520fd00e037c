"""Rolling updates on the libvirt test driver down the paths the other service tests
leave out: a new replica that fails after the update has already replaced an old one
(the rollback then swaps the healthy new replica for an old-configuration one), and
a GPU-bound role that really updates, surging onto a free MIG slice or, with none
free, replacing its replicas in place."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar.testing import TestClient

from appliance.context import Appliance
from appliance.store import journal
from appliance.store.models import ServiceVm, Vm
from tests.support.services import (
    Listener,
    booting,
    generation_of,
    point_replicas,
    wait_state,
)
from tests.support.tenancy import Api

PROFILE = "1g.10gb"


def _after(head: int, kind: str) -> list[dict[str, Any]]:
    return [e for e in journal.entries(after=head, limit=10_000) if e["kind"] == kind]


def _assert_steps(steps: list[str], expected: list[str]) -> None:
    """``steps`` are, one for one and in order, the ``expected`` ones (each a prefix:
    the details after it, as a probe's, are checked where they matter)."""
    assert len(steps) == len(expected), steps
    for got, want in zip(steps, expected, strict=True):
        assert got.startswith(want), (got, want, steps)


def _vms(c: TestClient[Any], headers: dict[str, str]) -> dict[str, str]:
    """The VMs the API lists to ``headers`` (the admin's: all the node's): {name: id}."""
    resp = c.get("/api/v1/vms", headers=headers)
    assert resp.status_code == 200, resp.text
    return {vm["name"]: vm["id"] for vm in resp.json()}


def _deploy(api: Api, app: Appliance, name: str, role: dict[str, Any]) -> None:
    """Deploy service ``name`` of the one ``role`` as acme's admin, and wait for it."""
    c, _, acme = api
    service = {"name": name, "roles": [role]}
    resp = c.post("/api/v1/services", headers=acme, json={"service": service})
    assert resp.status_code == 202, resp.text
    assert wait_state(app, name) == "ready", c.get(f"/api/v1/services/{name}", headers=acme).text


@dataclass
class Samples:
    """What a loop saw while an update ran: healthy replicas, replica rows, GPU slices
    claimed (as (owner, gpu, start)) and the slices the GPU had."""

    healthy: list[int] = field(default_factory=list)
    replicas: list[int] = field(default_factory=list)
    claims: list[list[tuple[str | None, str, int]]] = field(default_factory=list)
    slices: list[int] = field(default_factory=list)


@contextmanager
def sampling(app: Appliance, service: str, role: str, gpu: str = "") -> Iterator[Samples]:
    """Sample the role, and with ``gpu`` that GPU's claims and slices, until the block
    ends."""
    seen = Samples()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            seen.healthy.append(app.services.role_health(service, role))
            seen.replicas.append(ServiceVm.select().where(ServiceVm.service == service).count())
            if gpu:
                claims = app.gpu_claims.claims()
                seen.claims.append([(c.owner, c.gpu, c.start) for c in claims])
                seen.slices.append(len(app.gpus.backend.instances(gpu)))
            stop.wait(0.01)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


# -- a failure after the update has already replaced an old replica ------------------


def test_a_second_new_replica_that_fails_rolls_back_past_a_replaced_one(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, admin, acme = api
    tcp = {"kind": "tcp", "port": server.port, "timeout_s": 1}
    role = {"name": "api", "catalog": "demo", "count": 3, "values": {"model": "a"}, "health": tcp}
    _deploy(api, appliance, "llm", role)
    before = _vms(c, admin)
    assert sorted(before) == ["llm-api-1", "llm-api-2", "llm-api-3"]

    # The first replica of the new generation answers its check, a later one does not
    # (its guest would not come up with the new values); every replica of the old
    # generation answers. So the second new replica fails, after the first replaced
    # an old one.
    new_gen: list[str] = []
    lock = threading.Lock()  # the update and the sampling loop both probe

    def bad(vm_id: str) -> bool:
        if generation_of(vm_id) < 1:
            return False
        with lock:
            if vm_id not in new_gen:
                new_gen.append(vm_id)
            return vm_id != new_gen[0]

    point_replicas(appliance, bad=bad)
    head = journal.head()
    body = {"role": "api", "values": {"model": "b"}, "max_surge": 1, "max_unavailable": 0}
    with sampling(appliance, "llm", "api") as seen:
        resp = c.post("/api/v1/services/llm/update", headers=acme, json=body)
        assert resp.status_code == 202, resp.text
        assert wait_state(appliance, "llm") == "ready"
    plan = resp.json()["plan"]
    assert (plan["max_surge"], plan["max_unavailable"], plan["min_healthy"]) == (1, 0, 3)
    # Through the update and its rollback, never fewer than 3 healthy replicas: the
    # healthy new one went only once its old-configuration replacement answered.
    assert len(seen.healthy) >= 5 and min(seen.healthy) == 3
    assert max(seen.replicas) == 4  # one more than the count, never two

    # What the journal says happened, in order: the surge replica made, an old one
    # deleted, the second new one made (and failing), then the rollback.
    created = [(e["object_id"], e["state"]["spec"]["name"]) for e in _after(head, "vm.created")]
    assert [n for _, n in created] == ["llm-api-4", "llm-api-1", "llm-api-1"]
    (first_new, _), (second_new, _), (restored, _) = created
    assert new_gen == [first_new, second_new]  # both of generation 1, as the rows said
    deleted = [e["object_id"] for e in _after(head, "vm.deleted")]
    assert deleted == [before["llm-api-1"], second_new, first_new]
    seqs = {e["object_id"]: e["seq"] for e in _after(head, "vm.deleted")}
    made = {e["object_id"]: e["seq"] for e in _after(head, "vm.created")}
    # An old replica was gone before the second new one was made.
    assert seqs[before["llm-api-1"]] < made[second_new]
    # The healthy new replica stayed until its old-configuration replacement was made.
    assert made[restored] < seqs[first_new]

    view = c.get("/api/v1/services/llm", headers=acme).json()
    assert view["state"] == "ready"
    assert view["message"].startswith("update of role api failed and was rolled back: ")
    assert "role api: llm-api-1 is not healthy" in view["message"]
    (api_role,) = view["roles"]
    assert (api_role["count"], api_role["healthy"]) == (3, 3)
    assert api_role["values"] == {"model": "a"}  # the template is the old one still
    reps = sorted((r["vm"], r["generation"], r["healthy"]) for r in api_role["replicas"])
    assert reps == [("llm-api-1", 0, True), ("llm-api-2", 0, True), ("llm-api-3", 0, True)]
    assert appliance.services.role_health("llm", "api") == 3

    # No VM of the new generation is left on the node.
    after = _vms(c, admin)
    assert after == {
        "llm-api-1": restored,
        "llm-api-2": before["llm-api-2"],
        "llm-api-3": before["llm-api-3"],
    }
    assert not set(after.values()) & set(new_gen)
    rows = ServiceVm.select().where(ServiceVm.service == "llm")
    assert sorted((r.vm_id, r.generation) for r in rows) == sorted(
        (vm_id, 0) for vm_id in after.values()
    )

    port = server.port
    progress = view["progress"]
    assert (progress["operation"], progress["done"]) == ("update", True)
    _assert_steps(
        progress["steps"],
        [
            "update role api to generation 1",
            "create llm-api-4 (",
            f"wait for llm-api-4: TCP port {port} answers",
            f"llm-api-4 healthy (127.0.0.1:{port} accepts connections)",
            "delete llm-api-1",
            "create llm-api-1 (",
            f"wait for llm-api-1: TCP port {port} answers",
            "update failed: role api: llm-api-1 is not healthy: not healthy after 1 s: ",
            "delete llm-api-1",  # the unhealthy new replica
            "create llm-api-1 (",  # an old-configuration replica for the healthy new one
            f"wait for llm-api-1: TCP port {port} answers",
            f"llm-api-1 healthy (127.0.0.1:{port} accepts connections)",
            "delete llm-api-4",
            "role api rolled back to generation 0",
        ],
    )
    assert progress["steps"][7].endswith("; rolling role api back")

    failed = _after(head, "service.failed")
    assert len(failed) == 1 and failed[0]["object_id"] == "llm"
    state = failed[0]["state"]
    assert (state["operation"], state["role"], state["rolled_back"]) == ("update", "api", True)
    assert state["state"] == "ready" and state["message"] == view["message"]
    assert not _after(head, "service.updated")


# -- a GPU-bound role, really updated ------------------------------------------------


def _gpu_role(app: Appliance, api: Api, port: int, slices: int) -> str:
    """A layout of ``slices`` 1g.10gb slices and a service "inf" whose role "llm" has
    2 replicas on them; the GPU's UUID."""
    c, admin, _ = api
    gpu = str(c.get("/api/v1/gpus", headers=admin).json()["gpus"][0]["uuid"])
    resp = c.post(f"/api/v1/gpus/{gpu}/apply", headers=admin, json={"counts": {PROFILE: slices}})
    assert resp.status_code == 200, resp.text
    # The tenant may hold more slices than the GPU has: the GPU, not a quota, limits.
    quotas = {"gpu_slices": {PROFILE: 4}, "gpu_compute_slices": 4}
    assert c.put("/api/v1/tenants/acme/quotas", headers=admin, json=quotas).status_code == 200
    health = {"kind": "tcp", "port": port, "timeout_s": 5}
    role = {"name": "llm", "catalog": "demo", "count": 2, "gpu": PROFILE, "health": health}
    _deploy(api, app, "inf", {**role, "values": {"model": "a"}})
    assert sorted(o for o in _owners(c, admin, gpu).values() if o) == ["inf-llm-1", "inf-llm-2"]
    return gpu


def _owners(c: TestClient[Any], admin: dict[str, str], gpu: str) -> dict[int, str | None]:
    """{slice start: owner} in the GPU's layout as the API shows it."""
    layout = c.get(f"/api/v1/gpus/{gpu}", headers=admin).json()["layout"]["instances"]
    assert all(i["profile"] == PROFILE for i in layout), layout
    return {i["start"]: i["owner"] for i in layout}


def _update(api: Api, app: Appliance) -> dict[str, Any]:
    c, _, acme = api
    body = {"role": "llm", "values": {"model": "b"}}
    resp = c.post("/api/v1/services/inf/update", headers=acme, json=body)
    assert resp.status_code == 202, resp.text
    assert resp.json()["dry_run"] is False
    assert wait_state(app, "inf") == "ready"
    plan: dict[str, Any] = resp.json()["plan"]
    return plan


def _all_new_on_slices(api: Api, gpu: str) -> list[str]:
    """The role's replicas after the update: 2, all of generation 1, healthy, each on
    a slice of its own (the layout's owner, the VM's binding); their names."""
    c, admin, acme = api
    view = c.get("/api/v1/services/inf", headers=acme).json()
    assert (view["state"], view["message"]) == ("ready", "")
    (role,) = view["roles"]
    assert (role["count"], role["healthy"], role["values"]) == (2, 2, {"model": "b"})
    assert [(r["generation"], r["healthy"]) for r in role["replicas"]] == [(1, True)] * 2
    names = sorted(r["vm"] for r in role["replicas"])
    assert sorted(_vms(c, admin)) == names  # nothing else on the node
    owners = _owners(c, admin, gpu)
    assert sorted(o for o in owners.values() if o is not None) == names
    for name in names:
        held = c.get(f"/api/v1/vms/{name}", headers=acme).json()["gpu"]
        assert (held["gpu"], held["profile"], held["owner"]) == (gpu, PROFILE, name)
        assert owners[held["start"]] == name
    rows = ServiceVm.select().where(ServiceVm.service == "inf")
    assert sorted(r.generation for r in rows) == [1, 1]
    updated = [e for e in journal.entries(limit=10_000) if e["kind"] == "service.updated"]
    assert [(e["object_id"], e["state"]["generation"]) for e in updated] == [("inf", 1)]
    return names


def _never_over_the_gpu(seen: Samples, slices: int) -> None:
    assert seen.slices and set(seen.slices) == {slices}  # the layout never changed
    for claims in seen.claims:
        assert len(claims) <= slices, claims
        assert len({(g, s) for _, g, s in claims}) == len(claims), claims  # one owner each


def test_a_gpu_role_surges_onto_the_free_slice_and_never_drops_below_its_count(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, admin, acme = api
    gpu = _gpu_role(appliance, api, server.port, slices=3)
    free = [start for start, owner in _owners(c, admin, gpu).items() if owner is None]
    assert len(free) == 1
    point_replicas(appliance, bad=booting(0.3))  # each new replica takes 0.3 s to answer
    with sampling(appliance, "inf", "llm", gpu) as seen:
        plan = _update(api, appliance)
    assert (plan["max_surge"], plan["max_unavailable"], plan["min_healthy"]) == (1, 0, 2)
    assert plan["note"] == ""
    assert [(s["action"], s["replica"]) for s in plan["steps"]] == [
        ("create", "new-0"),
        ("await_health", "new-0"),
        ("delete", "old-0"),
        ("create", "new-1"),
        ("await_health", "new-1"),
        ("delete", "old-1"),
    ]

    assert len(seen.healthy) >= 5
    assert min(seen.healthy) == 2  # never fewer than the role's count
    assert 3 in seen.replicas  # the loop saw the surge replica's moments
    assert max(len(claims) for claims in seen.claims) == 3  # the surge held the third slice
    _never_over_the_gpu(seen, 3)

    names = _all_new_on_slices(api, gpu)
    assert names == ["inf-llm-1", "inf-llm-3"]
    # The surge replica (made first, while both old ones ran) sits on the slice that
    # was free.
    assert _owners(c, admin, gpu)[free[0]] == "inf-llm-3"
    steps = c.get("/api/v1/services/inf", headers=acme).json()["progress"]["steps"]
    _assert_steps(
        steps,
        [
            "update role llm to generation 1",
            "create inf-llm-3 (",
            "wait for inf-llm-3: ",
            "inf-llm-3 healthy (",
            "delete inf-llm-1",
            "create inf-llm-1 (",
            "wait for inf-llm-1: ",
            "inf-llm-1 healthy (",
            "delete inf-llm-2",
            "role llm updated to generation 1",
        ],
    )


def test_a_gpu_role_without_a_free_slice_is_replaced_in_place(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, admin, acme = api
    gpu = _gpu_role(appliance, api, server.port, slices=2)
    assert None not in _owners(c, admin, gpu).values()
    point_replicas(appliance, bad=booting(0.3))
    with sampling(appliance, "inf", "llm", gpu) as seen:
        plan = _update(api, appliance)
    assert (plan["max_surge"], plan["max_unavailable"], plan["min_healthy"]) == (0, 1, 1)
    assert "replaced in place" in plan["note"] and "max_unavailable 1" in plan["note"]
    assert [(s["action"], s["replica"]) for s in plan["steps"]] == [
        ("delete", "old-0"),
        ("create", "new-0"),
        ("await_health", "new-0"),
        ("delete", "old-1"),
        ("create", "new-1"),
        ("await_health", "new-1"),
    ]

    assert len(seen.healthy) >= 5
    assert min(seen.healthy) == 1  # one replica at a time was away, no more
    assert max(seen.replicas) == 2  # never a surge replica
    _never_over_the_gpu(seen, 2)

    names = _all_new_on_slices(api, gpu)
    assert names == ["inf-llm-1", "inf-llm-2"]
    steps = c.get("/api/v1/services/inf", headers=acme).json()["progress"]["steps"]
    _assert_steps(
        steps,
        [
            "update role llm to generation 1",
            "delete inf-llm-1",
            "create inf-llm-1 (",
            "wait for inf-llm-1: ",
            "inf-llm-1 healthy (",
            "delete inf-llm-2",
            "create inf-llm-2 (",
            "wait for inf-llm-2: ",
            "inf-llm-2 healthy (",
            "role llm updated to generation 1",
        ],
    )


def test_a_gpu_role_past_the_free_slices_is_refused_before_anything_is_made(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, admin, acme = api
    gpu = _gpu_role(appliance, api, server.port, slices=3)  # 2 replicas, 1 slice free
    before = sorted(vm.name for vm in Vm.select())
    resp = c.post("/api/v1/services/inf/roles/llm/scale", headers=acme, json={"count": 4})
    assert (resp.status_code, resp.json()["code"]) == (409, "no_free_gpu_slice"), resp.text
    assert (resp.json()["wanted"], resp.json()["free"]) == (2, 1)
    assert resp.json()["detail"].startswith(
        f"service inf needs 2 free {PROFILE} MIG slices for its new replicas (llm: 2); "
        "this node has 1 free"
    )
    role = {"name": "gen", "catalog": "demo", "count": 2, "gpu": PROFILE}
    resp = c.post(
        "/api/v1/services", headers=acme, json={"service": {"name": "more", "roles": [role]}}
    )
    assert (resp.status_code, resp.json()["code"]) == (409, "no_free_gpu_slice"), resp.text
    assert sorted(vm.name for vm in Vm.select()) == before
    assert sorted(o for o in _owners(c, admin, gpu).values() if o) == ["inf-llm-1", "inf-llm-2"]
    # The one free slice takes one more replica.
    resp = c.post("/api/v1/services/inf/roles/llm/scale", headers=acme, json={"count": 3})
    assert resp.status_code == 202, resp.text
    assert wait_state(appliance, "inf") == "ready"
    assert None not in _owners(c, admin, gpu).values()
