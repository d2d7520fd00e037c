"""Fleet operations in the registry UI, in Chromium, on one real fleet.

A rollout steered from the UI: the real node (``site-a``) is the canary of group
``tier=edge`` and rejects a VNet of a tenant it does not have; ``site-b`` to
``site-d`` are simulated sites over the sync API. The rollout halts at the canary and
no other site gets the document; the cause is fixed (the node gets the tenant), the
operator resumes, the rollout completes; a roll back puts every site on the previous
version. A viewer sees the rollout and is refused its actions. A provisioning
credential made in the UI enrolls a node, and is refused once revoked; the site is
re-bound to a new node. The version skew panel shows the real node's versions.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.integration.sync.sim_sites import SimSites, enroll_sims
from tests.integration.sync.test_desired_tenants import _wait_desired
from tests.registry_ui.conftest import VIEWER, Fleet, log_in, open_ready
from tests.support.desired import ACME, CAMS

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.root]

GROUP = "tier=edge"
SIMS = ["site-b", "site-c", "site-d"]


@pytest.fixture(scope="module")
def sims(fleet: Fleet) -> Iterator[SimSites]:
    """Three more sites of the group, and the group's vnets document at version 1."""
    lab = fleet.lab
    with lab.daemon.http(lab.admin_token) as local:
        # A vRAN VM that is not running makes a site unhealthy: the canary would fail
        # its soak for that, not for the document.
        gone = local.delete("/api/v1/vms/du")
        assert gone.status_code in (200, 204), gone.text
        trunk = local.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs"})
        assert trunk.status_code == 200, trunk.text
    with fleet.operator() as op:
        started = SimSites(lab.registry.url, enroll_sims(op, SIMS, {"tier": "edge"}))
        put = op.put(f"/api/v1/groups/{GROUP}/desired/vnets", json={"vnets": []})
        assert put.status_code == 200, put.text
    started.start()
    try:
        assert _wait_desired(lab, "vnets", 1)["result"] == "applied"
        _wait_sims(started, 1)
        yield started
    finally:
        started.stop()


def _wait_applied(fleet: Fleet, kind: str, version: int, timeout: float = 60) -> None:
    """The node applied ``version`` of ``kind`` (a rejection of it is not the end), and
    its journal told the registry so: a resume judges the site by what the registry
    knows, and a site still reported as rejecting the version fails again."""
    end = time.monotonic() + timeout
    while _wait_desired(fleet.lab, kind, version)["result"] != "applied":
        assert time.monotonic() < end, f"{kind} v{version} never applied"
        time.sleep(0.3)
    path = f"/api/v1/sites/{fleet.lab.site}/objects"
    with fleet.operator() as op:
        while True:
            objects = op.get(path, params={"type": "desired"}).json()["objects"]
            state = next((o["state"] for o in objects if o["object_id"] == kind), None) or {}
            if (state.get("version"), state.get("result")) == (version, "applied"):
                return
            assert time.monotonic() < end, f"the registry never saw {kind} v{version} applied"
            time.sleep(0.3)


def _wait_online(fleet: Fleet, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    with fleet.operator() as op:
        while op.get(f"/api/v1/sites/{fleet.lab.site}").json()["status"] != "online":
            assert time.monotonic() < end, "the node never came online"
            time.sleep(0.2)


def _fetched(sims: SimSites, version: int) -> list[str]:
    return [s.name for s in sims.sites if version in s.seen.get("vnets", [])]


def _wait_sims(sims: SimSites, version: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while len(_fetched(sims, version)) < len(sims.sites):
        assert time.monotonic() < end, f"simulated sites never fetched vnets v{version}"
        time.sleep(0.2)


def test_rollout_halts_at_the_canary_resumes_after_the_fix_and_rolls_back(
    page: Page, fleet: Fleet, sims: SimSites
) -> None:
    lab = fleet.lab
    log_in(page, fleet)
    open_ready(page, f"{fleet.ui_url}/documents?scope=group:{GROUP}&kind=vnets")
    expect(page.get_by_test_id("doc-version")).to_contain_text("version 1")
    page.get_by_test_id("doc-editor").fill(json.dumps({"vnets": [CAMS]}))
    page.get_by_test_id("doc-rollout").click()
    page.get_by_test_id("rollout-set-waves").fill("50, 100")
    page.get_by_test_id("rollout-set-soak_s").fill("1")
    # The canary is an online site first: the node must be online (its heartbeat
    # within 3 s) when the rollout starts, not lagging on a loaded machine.
    _wait_online(fleet)
    page.get_by_test_id("doc-confirm").click()
    expect(page).to_have_url(re.compile(r".*/rollouts/\d+$"))
    rollout_id = int(page.url.rsplit("/", 1)[1])
    with fleet.operator() as op:
        canary = op.get(f"/api/v1/rollouts/{rollout_id}/sites", params={"wave": 0}).json()
    assert [s["site"] for s in canary["sites"]] == [lab.site], canary

    # The canary rejects it: the page follows the rollout to its halt.
    expect(page.get_by_test_id("rollout-state")).to_have_text("halted", timeout=90_000)
    expect(page.get_by_test_id("rollout-reason")).to_contain_text(f"{lab.site} (rejected version 2")
    expect(page.get_by_test_id(f"rollout-site-{lab.site}")).to_contain_text("failed")
    expect(page.get_by_test_id("wave-failed-0")).to_have_text("1")
    expect(page.get_by_test_id("wave-state-1")).to_have_text("pending")
    page.screenshot(path=fleet.shots / "rollout-halted.png", full_page=True)
    assert _fetched(sims, 2) == []

    # The cause: the node has no tenant acme. Once it has, the agent hands the
    # refused VNet document over again and the node applies it.
    with fleet.operator() as op:
        tenants = {"tenants": {"acme": ACME}}
        put = op.put(f"/api/v1/sites/{lab.site}/desired/tenants", json=tenants)
        assert put.status_code == 200, put.text
    _wait_applied(fleet, "vnets", 2)
    page.get_by_test_id("rollout-resume").click()
    expect(page.get_by_test_id("rollout-state")).to_have_text("completed", timeout=90_000)
    expect(page.get_by_test_id("wave-healthy-2")).to_have_text("2")
    expect(page.get_by_test_id("rollout-sites")).to_contain_text("None.")
    page.screenshot(path=fleet.shots / "rollout-completed.png", full_page=True)
    _wait_sims(sims, 2)

    # Roll back (asked first): every site goes back to version 1's content.
    page.get_by_test_id("rollout-rollback").click()
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("rollout-state")).to_have_text("rolled_back")
    expect(page.get_by_test_id("rollout-summary")).to_contain_text("rolled back as v3")
    with fleet.operator() as op:
        group = op.get(f"/api/v1/groups/{GROUP}/desired/vnets").json()
        assert (group["version"], group["document"]) == (3, {"vnets": []})
        for name in [lab.site, *SIMS]:
            desired = op.get(f"/api/v1/sites/{name}/desired").json()
            assert "vnets" in json.dumps(desired), desired
    assert _wait_desired(lab, "vnets", 3)["result"] == "applied"
    _wait_sims(sims, 3)
    with lab.daemon.http(lab.admin_token) as local:
        names = {v["name"] for v in local.get("/api/v1/n6/vnets").json()}
    assert "cams" not in names, names

    # The list has it, filtered by its state.
    page.goto(f"{fleet.ui_url}/rollouts?state=rolled_back")
    expect(page.get_by_test_id(f"rollout-row-{rollout_id}")).to_contain_text("vnets v2")
    page.get_by_test_id("rollout-filter").click()
    page.get_by_role("option", name="running").click()
    expect(page.get_by_test_id(f"rollout-row-{rollout_id}")).to_have_count(0)
    expect(page).to_have_url(f"{fleet.ui_url}/rollouts?state=running")


def test_a_viewer_sees_rollouts_and_is_refused_their_actions(page: Page, fleet: Fleet) -> None:
    with fleet.operator() as op:
        listed = op.get("/api/v1/rollouts", params={"group": GROUP}).json()["rollouts"]
    rollout_id = listed[0]["id"]
    # An admin logs out of a page that polls; the viewer who logs in next in the same
    # browser stays logged in (the admin page's last poll meets a revoked token).
    log_in(page, fleet)
    page.goto(f"{fleet.ui_url}/rollouts")
    expect(page.get_by_test_id(f"rollout-row-{rollout_id}")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r".*/login$"))
    log_in(page, fleet, *VIEWER)
    page.wait_for_timeout(2500)  # past the admin page's next polls
    page.goto(f"{fleet.ui_url}/rollouts/{rollout_id}")
    expect(page).to_have_url(f"{fleet.ui_url}/rollouts/{rollout_id}")
    expect(page.get_by_test_id("rollout-state")).to_have_text("rolled_back")
    expect(page.get_by_test_id("wave-healthy-2")).to_have_text("2")
    expect(page.get_by_test_id("rollout-actions").locator("button")).to_have_count(0)
    headers = {"Authorization": f"Bearer {fleet.login_token(*VIEWER)}"}
    for action in ("pause", "resume", "abort", "rollback"):
        refused = httpx.post(
            f"{fleet.lab.registry.url}/api/v1/rollouts/{rollout_id}/{action}",
            headers=headers,
            timeout=30,
        )
        refusal = (refused.status_code, refused.json()["code"])
        assert refusal == (403, "admin_required"), refused.text
    page.goto(f"{fleet.ui_url}/rollouts")
    expect(page.get_by_test_id(f"rollout-row-{rollout_id}")).to_be_visible()
    page.goto(f"{fleet.ui_url}/enroll")
    expect(page.get_by_test_id("prov-rows")).to_be_visible()
    for control in ("prov-create", "node-list", "node-rebind"):
        expect(page.get_by_test_id(control)).to_have_count(0)


def _provision(fleet: Fleet, token: str, hardware_id: str) -> httpx.Response:
    return httpx.post(
        f"{fleet.lab.registry.url}/api/v1/provision",
        json={"hardware_id": hardware_id, "hostname": f"host-{hardware_id}"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_provisioning_credential_shown_once_works_then_revoked(page: Page, fleet: Fleet) -> None:
    log_in(page, fleet)
    open_ready(page, f"{fleet.ui_url}/enroll")
    form = {
        "name": "rack-1",
        "labels": "tier=prov",
        "region": "west",
        "allow": "HW-0001=cell-prov, HW-0002",
        "expires": "30",
    }
    for field, text in form.items():
        page.get_by_test_id(f"prov-{field}").fill(text)
    page.get_by_test_id("prov-create").click()
    shown = page.get_by_test_id("prov-token")
    expect(shown).to_have_text(re.compile(r"^tbp_"))
    expect(page.get_by_test_id("prov-warning")).to_contain_text("will not be shown again")
    expect(page.get_by_test_id("prov-state-rack-1")).to_contain_text("active")
    page.screenshot(path=fleet.shots / "provisioning.png", full_page=True)
    token = shown.inner_text()
    page.reload()
    expect(page.get_by_test_id("prov-row-rack-1")).to_contain_text("2 allowed")
    assert token not in page.content()

    # A node with an allowed identity enrolls itself into the site it is listed for.
    made = _provision(fleet, token, "HW-0001")
    assert made.status_code == 200, made.text
    assert (made.json()["site"], made.json()["created"]) == ("cell-prov", True)
    with fleet.operator() as op:
        site = op.get("/api/v1/sites/cell-prov").json()
    assert (site["labels"], site["region"]) == ({"tier": "prov"}, "west")

    # The site's identity is bound; rebinding it to a new node starts epoch 2.
    page.get_by_test_id("node-site").fill("cell-prov")
    page.get_by_test_id("node-show").click()
    expect(page.get_by_test_id("node-identities")).to_contain_text("HW-0001: bound")
    page.get_by_test_id("node-rebind").click()
    expect(page.get_by_role("dialog")).to_contain_text("old node's site secret stops working")
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("node-token")).to_have_text(re.compile(r"^tbe_"))
    expect(page.get_by_test_id("node-warning")).to_contain_text("Journal epoch 1")
    # A replacement identity listed for it is shown as such.
    page.get_by_test_id("node-hardware").fill("HW-0003")
    page.get_by_test_id("node-replacement").click()
    page.get_by_test_id("node-list").click()
    expect(page.get_by_test_id("node-identities")).to_contain_text("HW-0003: listed")
    page.goto(f"{fleet.ui_url}/sites/cell-prov")
    expect(page.get_by_test_id("site-facts")).to_contain_text("Journal epoch2")
    expect(page.get_by_test_id("site-epoch-1")).to_contain_text("host-HW-0001")

    # Revoked (asked first): the credential no longer enrolls anyone.
    open_ready(page, f"{fleet.ui_url}/enroll")
    page.get_by_test_id("prov-revoke-rack-1").click()
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("prov-state-rack-1")).to_have_text("revoked")
    refused = _provision(fleet, token, "HW-0002")
    assert (refused.status_code, refused.json()["code"]) == (
        401,
        "provisioning_credential_revoked",
    ), refused.text


def test_version_skew_shows_the_nodes_versions_and_leads_to_its_sites(
    page: Page, fleet: Fleet
) -> None:
    with fleet.operator() as op:
        versions = op.get(f"/api/v1/sites/{fleet.lab.site}").json()["versions"]
    running = versions["towerbox"]
    assert running, versions
    log_in(page, fleet)
    row = page.get_by_test_id("versions-towerbox")
    expect(row).to_contain_text(f"{running}: 1 (most)")
    expect(page.get_by_test_id("versions-vgpu_manager")).to_be_visible()
    page.screenshot(path=fleet.shots / "version-skew.png", full_page=True)
    page.get_by_test_id(f"version-towerbox-{running}").click()
    expect(page).to_have_url(
        re.compile(rf".*/sites\?component=towerbox&version={re.escape(running)}$")
    )
    expect(page.get_by_test_id(f"site-link-{fleet.lab.site}")).to_be_visible()
    expect(page.get_by_test_id("site-page")).to_have_text("page 1 of 1 · 1 sites")
    expect(page.get_by_test_id("site-filter-version")).to_have_value(running)


def test_a_refused_rollout_action_is_a_readable_notice(page: Page, fleet: Fleet) -> None:
    """The group's first document has nothing to roll back to: 409, nothing changed."""
    with fleet.operator() as op:
        made = op.post("/api/v1/sites", json={"name": "lonely", "labels": {"tier": "lonely"}})
        assert made.status_code == 201, made.text
        body = {"group": "tier=lonely", "kind": "tenants", "document": {"tenants": {}}}
        rollout = op.post("/api/v1/rollouts", json=body)
        assert rollout.status_code == 201, rollout.text
    rollout_id = rollout.json()["id"]
    log_in(page, fleet)
    open_ready(page, f"{fleet.ui_url}/rollouts/{rollout_id}")
    page.get_by_test_id("rollout-rollback").click()
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("rollout-notice")).to_contain_text("no_previous_version")
    with fleet.operator() as op:
        assert op.get(f"/api/v1/rollouts/{rollout_id}").json()["rollback_version"] is None
        assert op.get("/api/v1/groups/tier=lonely/desired/tenants").json()["version"] == 1
