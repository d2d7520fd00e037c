"""Staged rollouts through the API: waves, health gates, halts, operator actions, bad
input. The periodic task is off here; each test steps the rollout itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.config import RolloutsConfig
from registry.context import build_registry
from registry.services import rollout_plan
from registry.services.rollout_step import advance
from registry.store.models import DesiredDoc, Site
from registry.store.rollout_models import RolloutRow, RolloutSiteRow
from tests.registry.fleetapi import Api, api_for, make_config
from tests.registry.rollout_sites import Node, group_of, step
from tests.registry.test_metrics import scrape, value
from towerbox_core.api.rollouts import RolloutCreate

URL = "/api/v1/rollouts"


@pytest.fixture
def rapi(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Api]:
    database = ""
    if engine == "postgresql":
        database = request.getfixturevalue("pg_server").create_database()
    cfg = make_config(tmp_path, database, TOWERBOX_REGISTRY_ROLLOUTS_TICK_S="0")
    reg = build_registry(cfg)
    try:
        yield from api_for(reg)
    finally:
        reg.db.close()


def _create(api: Api, **body: Any) -> Any:
    return api.client.post(
        URL, json={"group": "tier=gold", "kind": "gpu", **body}, headers=api.admin
    )


def test_waves_are_cumulative_with_a_canary_that_prefers_online_sites() -> None:
    opts = rollout_plan.options(
        RolloutCreate(group="a=b", kind="gpu", document={}), RolloutsConfig()
    )
    sites = [(n, f"s{n:02d}", n != 0) for n in range(20)]
    waves = rollout_plan.plan(sites, opts)
    assert [w.percent for w in waves] == [None, 5, 25, 100]
    assert [len(w.sites) for w in waves] == [1, 1, 3, 15]
    assert waves[0].sites == (1,)  # s00 is offline: the canary is the first online site
    placed = [s for w in waves for s in w.sites]
    assert sorted(placed) == list(range(20))
    # Fewer sites than waves: each wave still gets one, none twice, empty waves dropped.
    small = rollout_plan.plan([(1, "a", True), (2, "b", True)], opts)
    assert [w.sites for w in small] == [(1,), (2,)]


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        ({"waves": [25, 5, 100]}, "invalid_waves", 422),
        ({"waves": [5, 5, 100]}, "invalid_waves", 422),
        ({"waves": [5, 25, 90]}, "invalid_waves", 422),
        ({"waves": [0, 100]}, "invalid_waves", 422),
        ({"waves": [50, 150]}, "invalid_waves", 422),
        ({"waves": []}, "invalid_waves", 422),
        ({"failure_pct": 101}, "invalid_threshold", 422),
        ({"canary_failure_pct": -1}, "invalid_threshold", 422),
        ({"soak_s": -1}, "invalid_duration", 422),
        ({"offline_wait_s": -5}, "invalid_duration", 422),
        ({"canary": -1}, "invalid_canary", 422),
        ({"group": "novalue"}, "invalid_label", 422),
        ({"group": "tier=empty"}, "empty_group", 422),
        ({"kind": "firmware"}, "unknown_desired_kind", 404),
        ({"kind": "tenants", "document": {"tenants": {"bad name": {}}}}, "invalid_name", 422),
        ({"document": [1]}, "invalid_document", 422),
        ({"if_match": '"7"'}, "version_mismatch", 412),
    ],
)
def test_bad_input_changes_nothing(rapi: Api, body: dict[str, Any], code: str, status: int) -> None:
    group_of(rapi, 2)
    rapi.client.put("/api/v1/groups/tier=gold/desired/gpu", json={"v": 1}, headers=rapi.admin)
    docs = DesiredDoc.select().count()
    resp = _create(rapi, **{"document": {"v": 2}, **body})
    assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text
    assert DesiredDoc.select().count() == docs
    assert RolloutRow.select().count() == 0


def test_a_rollout_goes_out_wave_by_wave_and_completes(rapi: Api) -> None:
    nodes = group_of(rapi, 6)
    rapi.client.put("/api/v1/groups/tier=gold/desired/gpu", json={"v": 1}, headers=rapi.admin)
    resp = _create(rapi, document={"v": 2}, waves=[50, 100], soak_s=0)
    assert resp.status_code == 201, resp.text
    view = resp.json()
    assert (view["version"], view["previous_version"], view["state"]) == (2, 1, "running")
    assert [(w["sites"], w["released"]) for w in view["waves"]] == [(1, 1), (2, 0), (3, 0)]
    canary = nodes[0]  # all online: the canary is the first by name
    assert canary.version("gpu") == 2
    assert [n.version("gpu") for n in nodes[1:]] == [1] * 5
    assert canary.fetch("gpu")["document"] == {"v": 2}
    assert nodes[1].fetch("gpu")["document"] == {"v": 1}

    canary.report("gpu")
    view = step(rapi, view["id"])
    assert view["waves"][0]["state"] == "done"
    assert view["waves"][0]["healthy"] == 1
    assert view["current_wave"] == 1
    assert [n.version("gpu") for n in nodes] == [2, 2, 2, 1, 1, 1]
    for node in nodes[1:3]:
        node.report("gpu")
    view = step(rapi, view["id"])
    assert view["current_wave"] == 2
    for node in nodes[3:]:
        node.report("gpu")
    view = step(rapi, view["id"])
    assert view["state"] == "completed"
    assert [w["healthy"] for w in view["waves"]] == [1, 2, 3]
    sites = rapi.client.get(f"{URL}/{view['id']}/sites?status=healthy", headers=rapi.admin).json()
    assert sites["total"] == 6
    # Finished: the group's document goes to every site at once again.
    put = rapi.client.put("/api/v1/groups/tier=gold/desired/gpu", json={"v": 3}, headers=rapi.admin)
    assert put.status_code == 200


def test_a_rejecting_canary_halts_and_the_operator_rolls_back(rapi: Api) -> None:
    nodes = group_of(rapi, 4)
    rapi.client.put("/api/v1/groups/tier=gold/desired/gpu", json={"v": 1}, headers=rapi.admin)
    view = _create(rapi, document={"v": 2}, soak_s=0).json()
    nodes[0].report("gpu", "rejected", "invalid_layout")
    view = step(rapi, view["id"])
    assert view["state"] == "halted"
    assert "s00 (rejected version 2: invalid_layout)" in view["reason"]
    assert [n.version("gpu") for n in nodes[1:]] == [1, 1, 1]
    assert all(2 not in n.seen for n in nodes[1:])

    put = rapi.client.put("/api/v1/groups/tier=gold/desired/gpu", json={"v": 9}, headers=rapi.admin)
    assert (put.status_code, put.json()["code"]) == (409, "rollout_active")
    again = _create(rapi, document={"v": 9})
    assert (again.status_code, again.json()["code"]) == (409, "rollout_active")

    # Resumed with the canary still refusing: judged again, halted again.
    resumed = rapi.client.post(f"{URL}/{view['id']}/resume", headers=rapi.admin).json()
    assert resumed["state"] == "halted"

    back = rapi.client.post(f"{URL}/{view['id']}/rollback", headers=rapi.admin)
    assert back.status_code == 200, back.text
    assert (back.json()["state"], back.json()["rollback_version"]) == ("rolled_back", 3)
    for node in nodes:
        assert node.version("gpu") == 3
        assert node.fetch("gpu")["document"] == {"v": 1}
    twice = rapi.client.post(f"{URL}/{view['id']}/rollback", headers=rapi.admin)
    assert (twice.status_code, twice.json()["code"]) == (409, "invalid_rollout_state")


def test_resume_counts_a_fixed_site_as_good(rapi: Api) -> None:
    nodes = group_of(rapi, 3)
    view = _create(rapi, document={"v": 1}, soak_s=0, waves=[100]).json()
    nodes[0].journal("alert.fired", "alert", "7", {"rule": "vran_vm_down"})
    nodes[0].report("gpu")
    view = step(rapi, view["id"])
    assert view["state"] == "halted"
    assert "alert vran_vm_down fired" in view["reason"]
    assert view["waves"][0]["failed"] == 1
    # The operator looks into it and resumes: judged from the resume on, the site is
    # sound, and counts as good with the others.
    resumed = rapi.client.post(f"{URL}/{view['id']}/resume", headers=rapi.admin).json()
    assert resumed["state"] == "running"
    for node in nodes[1:]:
        node.report("gpu")
    view = step(rapi, view["id"])
    assert view["state"] == "completed", view
    assert [w["healthy"] for w in view["waves"]] == [1, 2]
    paused = rapi.client.post(f"{URL}/{view['id']}/pause", headers=rapi.admin)
    assert (paused.status_code, paused.json()["code"]) == (409, "invalid_rollout_state")


def test_rollback_without_a_previous_version_changes_nothing(rapi: Api) -> None:
    nodes = group_of(rapi, 2)
    view = _create(rapi, document={"v": 1}, soak_s=0).json()
    resp = rapi.client.post(f"{URL}/{view['id']}/rollback", headers=rapi.admin)
    assert (resp.status_code, resp.json()["code"]) == (409, "no_previous_version")
    assert rapi.client.get(f"{URL}/{view['id']}", headers=rapi.admin).json()["state"] == "running"
    assert DesiredDoc.select().count() == 1
    # Not yet released, the second site has no document from the group at all.
    assert (nodes[0].version("gpu"), nodes[1].version("gpu")) == (1, None)


def test_an_offline_site_is_deferred_and_still_gets_the_version(rapi: Api) -> None:
    nodes = group_of(rapi, 3)
    away = Node(rapi, "s03", rapi.enroll("s03", labels={"tier": "gold"}))  # never heard from
    nodes[2].journal("vm.created", "vm", "du", {"spec": {"name": "du", "role": "vran"}})
    body = {"document": {"v": 1}, "soak_s": 0, "canary": 0, "waves": [100]}
    view = _create(rapi, **body).json()
    for node in nodes:
        node.report("gpu")
    view = step(rapi, view["id"])
    # The wave did not wait for s03; it is listed, and it is still followed.
    assert view["state"] == "completed"
    assert (view["waves"][0]["healthy"], view["waves"][0]["deferred"]) == (3, 1)
    deferred = rapi.client.get(f"{URL}/{view['id']}/sites?status=deferred", headers=rapi.admin)
    assert [(s["site"], s["reason"]) for s in deferred.json()["sites"]] == [
        ("s03", "offline when its wave started")
    ]
    assert away.version("gpu") == 1
    away.report("gpu")
    view = step(rapi, view["id"])
    assert (view["waves"][0]["healthy"], view["waves"][0]["deferred"]) == (4, 0)


def test_a_silent_site_is_deferred_after_the_wait(rapi: Api) -> None:
    nodes = group_of(rapi, 2)
    body = {"document": {"v": 1}, "soak_s": 0, "canary": 0, "waves": [100], "offline_wait_s": 0}
    view = _create(rapi, **body).json()
    assert view["state"] == "completed"
    silent = rapi.client.get(f"{URL}/{view['id']}/sites", headers=rapi.admin).json()["sites"]
    assert {s["reason"] for s in silent} == {"silent past offline_wait_s"}
    nodes[0].report("gpu", "conflict")
    view = step(rapi, view["id"])
    assert (view["waves"][0]["failed"], view["waves"][0]["deferred"]) == (1, 1)


def test_an_abort_keeps_each_site_where_it_is(rapi: Api) -> None:
    nodes = group_of(rapi, 4)
    rapi.client.put("/api/v1/groups/tier=gold/desired/gpu", json={"v": 1}, headers=rapi.admin)
    view = _create(rapi, document={"v": 2}, soak_s=0).json()
    aborted = rapi.client.post(f"{URL}/{view['id']}/abort", headers=rapi.admin).json()
    assert aborted["state"] == "aborted"
    assert [n.version("gpu") for n in nodes] == [2, 1, 1, 1]
    # A later rollout starts every site from where the abort left it.
    later = _create(rapi, document={"v": 3}, soak_s=0).json()
    assert later["previous_version"] == 2
    assert [n.version("gpu") for n in nodes] == [3, 1, 1, 1]
    listed = rapi.client.get(f"{URL}?state=aborted", headers=rapi.admin).json()
    assert [r["id"] for r in listed["rollouts"]] == [view["id"]]


def test_viewers_read_and_never_steer(rapi: Api) -> None:
    group_of(rapi, 1)
    view = _create(rapi, document={"v": 1}).json()
    viewer = rapi.viewer("watcher")
    assert rapi.client.get(f"{URL}/{view['id']}", headers=viewer).status_code == 200
    body = {"group": "tier=gold", "kind": "gpu", "document": {}}
    assert rapi.client.post(URL, json=body, headers=viewer).status_code == 403
    assert rapi.client.post(f"{URL}/{view['id']}/abort", headers=viewer).status_code == 403
    assert rapi.client.get(f"{URL}/999", headers=viewer).json()["code"] == "rollout_not_found"
    for method, path in (("GET", URL), ("POST", URL), ("POST", f"{URL}/{view['id']}/pause")):
        assert rapi.client.request(method, path).status_code == 401, path


def test_metrics_count_rollouts_by_state(rapi: Api) -> None:
    nodes = group_of(rapi, 2)
    first = _create(rapi, document={"v": 1}, soak_s=0).json()
    nodes[0].report("gpu", "rejected", "invalid_layout")
    step(rapi, first["id"])
    rapi.client.post(f"{URL}/{first['id']}/abort", headers=rapi.admin)
    _create(rapi, document={"v": 2}, soak_s=0)
    samples = scrape(rapi)
    name = "towerbox_registry_rollouts"
    assert value(samples, name, state="aborted") == 1
    assert value(samples, name, state="running") == 1
    assert (name, (("state", "halted"),)) in samples  # every state, 0 included


def test_steps_from_many_threads_release_each_wave_once(rapi: Api) -> None:
    """Workers step the same rollout at once; the row lock makes them take turns."""
    nodes = group_of(rapi, 6)
    view = _create(rapi, document={"v": 1}, soak_s=0, waves=[50, 100]).json()
    nodes[0].report("gpu")  # the canary: the next step releases wave 1
    status = rapi.registry.sites.status
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                advance(view["id"], status)
        except BaseException as err:
            errors.append(err)
        finally:
            rapi.registry.db.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    view = step(rapi, view["id"])
    assert view["current_wave"] == 1
    assert [w["released"] for w in view["waves"]] == [1, 2, 0]
    wave_1 = RolloutSiteRow.select(RolloutSiteRow.released_at).where(
        RolloutSiteRow.rollout == view["id"], RolloutSiteRow.wave == 1
    )
    assert len({r.released_at for r in wave_1}) == 1  # released once, by one step
    for node in nodes[1:3]:
        node.report("gpu")
    step(rapi, view["id"])
    for node in nodes[3:]:
        node.report("gpu")
    view = step(rapi, view["id"])
    assert view["state"] == "completed", view
    assert [w["healthy"] for w in view["waves"]] == [1, 2, 3]


def test_deleting_a_site_takes_its_rollout_rows(rapi: Api) -> None:
    group_of(rapi, 2)
    view = _create(rapi, document={"v": 1}).json()
    assert rapi.client.delete("/api/v1/sites/s01", headers=rapi.admin).status_code == 204
    sites = rapi.client.get(f"{URL}/{view['id']}/sites", headers=rapi.admin).json()
    assert [s["site"] for s in sites["sites"]] == ["s00"]


def test_a_vran_vm_down_or_a_site_gone_quiet_while_soaking_fails_it(rapi: Api) -> None:
    nodes = group_of(rapi, 3)
    body = {"document": {"v": 1}, "soak_s": 60, "canary": 0, "waves": [100], "failure_pct": 50}
    view = _create(rapi, **body).json()
    nodes[0].journal("vm.created", "vm", "du", {"spec": {"name": "du", "role": "vran"}})
    nodes[0].journal("vm.state", "vm", "du", {"name": "du", "state": "shutoff"})
    for node in nodes:
        node.report("gpu")
    view = step(rapi, view["id"])
    assert view["waves"][0]["applied"] == 2  # soaking: 60 s to go
    assert (view["state"], view["waves"][0]["failed"]) == ("running", 1)  # 1 of 3: under 50 %
    # s01 stops calling in while it soaks: a minute later it is past the online bound.
    Site.update(last_contact=Site.last_contact - 3_600_000).where(Site.name == "s01").execute()
    view = step(rapi, view["id"])
    assert view["state"] == "halted"
    failed = rapi.client.get(f"{URL}/{view['id']}/sites?status=failed", headers=rapi.admin)
    assert {(s["site"], s["reason"]) for s in failed.json()["sites"]} == {
        ("s00", "vRAN VM du is shutoff"),
        ("s01", "offline after applying"),
    }


def test_a_replaced_node_s_alerts_count_against_its_site(rapi: Api) -> None:
    nodes = group_of(rapi, 2)
    for _ in range(5):  # the old node's journal: the site is released at seq 5
        nodes[0].journal("vm.updated", "vm", "v1", {"name": "v1"})
    view = _create(rapi, document={"v": 1}, soak_s=0, waves=[100], canary=0).json()
    view = step(rapi, view["id"])
    rebound = rapi.client.post("/api/v1/sites/s00/rebind", json={}, headers=rapi.admin).json()
    token = rebound["enrollment_token"]
    secret = rapi.client.post("/api/v1/enroll", json={"token": token, "hostname": "new"})
    new = Node(rapi, "s00", {"Authorization": f"Bearer {secret.json()['secret']}"})
    new.index("gpu")
    new.report("gpu")  # the documents reach the new node: seq 1
    new.journal("alert.fired", "alert", "1", {"rule": "vran_vm_down"})  # seq 2, below 5
    nodes[1].report("gpu")
    view = step(rapi, view["id"])
    assert view["state"] == "halted", view
    assert "alert vran_vm_down fired" in view["reason"]
