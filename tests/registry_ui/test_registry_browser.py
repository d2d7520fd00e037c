"""The registry web UI in Chromium against real registry, appliance and agent processes.

The tests share one fleet and run in order: the last two stop the agent and the
registry, and a test stops any process it started. Screenshots land in the
module's tmp folder (``screenshots/``).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.registry_ui.conftest import EXTRA_SITES, VIEWER, Fleet, log_in, open_ready

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.root]

TENANTS_BAD = '{"tenants": {"acme": {"quotas": {"vcpus": -2}}}}'
TENANTS_GOOD = '{"tenants": {"acme": {"quotas": {"vcpus": 16}}}}'


def test_login_as_admin_and_as_viewer(page: Page, fleet: Fleet) -> None:
    page.goto(f"{fleet.ui_url}/sites")
    expect(page).to_have_url(f"{fleet.ui_url}/login?next=/sites")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill("wrong")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("login-error")).to_contain_text("Wrong username or password")
    page.get_by_label("Password", exact=True).fill(fleet.admin_password)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{fleet.ui_url}/sites")
    expect(page.get_by_test_id("operator")).to_have_text("admin (admin)")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r".*/login$"))
    log_in(page, fleet, *VIEWER)
    expect(page.get_by_test_id("operator")).to_have_text(f"{VIEWER[0]} (viewer)")


def test_overview_counts_sites_by_status_region_and_label(page: Page, fleet: Fleet) -> None:
    log_in(page, fleet)
    total = EXTRA_SITES + 1
    expect(page.get_by_test_id("overview-total")).to_have_text(
        f"{total} sites, {EXTRA_SITES} never enrolled"
    )
    expect(page.get_by_test_id("status-count-online")).to_have_text("1")
    expect(page.get_by_test_id("status-count-pending")).to_have_text(str(EXTRA_SITES))
    expect(page.get_by_test_id("status-count-offline")).to_have_text("0")
    expect(page.get_by_test_id("region-total-north")).to_have_text(str(EXTRA_SITES))
    expect(page.get_by_test_id("region-total-eu")).to_have_text("1")
    expect(page.get_by_test_id("label-total-tier=gold")).to_have_text(str(EXTRA_SITES // 2))
    expect(page.get_by_test_id("label-total-tier=edge")).to_have_text("1")
    expect(page.get_by_test_id("no-problems")).to_be_visible()
    page.screenshot(path=fleet.shots / "overview.png", full_page=True)
    # A count leads to the sites it counts.
    page.get_by_test_id("status-online").click()
    expect(page).to_have_url(f"{fleet.ui_url}/sites?status=online")
    expect(page.get_by_test_id(f"site-link-{fleet.lab.site}")).to_be_visible()
    expect(page.get_by_test_id("site-page")).to_have_text("page 1 of 1 · 1 sites")


def test_site_list_pages_searches_and_filters(page: Page, fleet: Fleet) -> None:
    log_in(page, fleet)
    page.goto(f"{fleet.ui_url}/sites")
    expect(page.get_by_test_id("site-page")).to_have_text(f"page 1 of 2 · {EXTRA_SITES + 1} sites")
    expect(page.get_by_test_id("site-link-bulk-000")).to_be_visible()
    page.get_by_test_id("page-next").click()
    expect(page.get_by_test_id("site-page")).to_have_text(re.compile(r"^page 2 of 2"))
    expect(page).to_have_url(f"{fleet.ui_url}/sites?page=2")
    expect(page.get_by_test_id(f"site-link-{fleet.lab.site}")).to_be_visible()
    expect(page.get_by_test_id("site-link-bulk-000")).to_have_count(0)

    page.get_by_test_id("site-search").fill("bulk-05")
    expect(page.get_by_test_id("site-page")).to_have_text("page 1 of 1 · 10 sites")
    expect(page).to_have_url(f"{fleet.ui_url}/sites?q=bulk-05")
    expect(page.get_by_test_id("site-link-bulk-059")).to_be_visible()
    page.get_by_test_id("site-filter-label").fill("tier=gold")
    expect(page.get_by_test_id("site-page")).to_have_text("page 1 of 1 · 5 sites")
    expect(page.get_by_test_id("site-link-bulk-050")).to_have_count(0)
    # The URL carries the filters: a reload (or a colleague) sees the same list.
    page.reload()
    expect(page.get_by_test_id("site-page")).to_have_text("page 1 of 1 · 5 sites")
    expect(page.get_by_test_id("site-search")).to_have_value("bulk-05")
    page.screenshot(path=fleet.shots / "site-list.png", full_page=True)

    # The node's hostname finds it too; a bad search says why.
    with fleet.operator() as op:
        hostname = op.get(f"/api/v1/sites/{fleet.lab.site}").json()["hostname"]
    page.goto(f"{fleet.ui_url}/sites?sort=-last_contact")
    expect(page.locator("tbody tr").first).to_contain_text(fleet.lab.site)
    page.get_by_test_id("site-search").fill(hostname)
    expect(page.get_by_test_id(f"site-link-{fleet.lab.site}")).to_be_visible()
    expect(page.get_by_test_id("site-page")).to_have_text("page 1 of 1 · 1 sites")
    page.get_by_test_id("site-search").fill("50%")
    expect(page.get_by_role("alert")).to_contain_text("invalid_search")


def test_site_detail_shows_the_nodes_vms_and_gpu_layout(page: Page, fleet: Fleet) -> None:
    log_in(page, fleet)
    page.goto(f"{fleet.ui_url}/sites/{fleet.lab.site}")
    expect(page.get_by_test_id("site-status")).to_have_text("online")
    expect(page.get_by_test_id("site-facts")).to_contain_text("test-node")
    vm = page.get_by_test_id("site-vm-du")
    expect(vm).to_contain_text("vran")
    expect(vm).to_contain_text(re.compile(r"as of \d{4}-\d\d-\d\d"))
    expect(page.get_by_test_id("site-gpu-0")).to_contain_text("4 MIG instances")
    slots = page.get_by_test_id("slotmap-0").locator("[data-role]")
    expect(slots).to_have_count(7)  # four 1-slice instances, three free slices
    expect(page.get_by_test_id("slotmap-0").locator('[data-role="b2b"]')).to_have_count(4)
    expect(page.get_by_test_id("site-journal")).to_contain_text("vm.created")
    expect(page.get_by_test_id("site-journal")).to_contain_text("admin")
    page.screenshot(path=fleet.shots / "site-detail.png", full_page=True)


def _editor(page: Page, fleet: Fleet, scope: str, kind: str) -> None:
    open_ready(page, f"{fleet.ui_url}/documents?scope={scope}&kind={kind}")
    expect(page.get_by_test_id("doc-version")).not_to_be_empty()
    # The published text arrives as the editor's value: typing before it lands is lost.
    expect(page.get_by_test_id("doc-editor")).not_to_have_value("")


def test_document_validation_error_then_diff_and_publish(page: Page, fleet: Fleet) -> None:
    log_in(page, fleet)
    scope = f"site:{fleet.lab.site}"
    _editor(page, fleet, scope, "tenants")
    expect(page.get_by_test_id("doc-version")).to_contain_text("Not published yet")
    editor = page.get_by_test_id("doc-editor")
    editor.fill("{not json")
    page.get_by_test_id("doc-publish").click()
    expect(page.get_by_test_id("doc-error")).to_contain_text("invalid_json")

    editor.fill(TENANTS_BAD)
    page.get_by_test_id("doc-publish").click()
    expect(page.get_by_test_id("doc-diff")).to_contain_text('"vcpus": -2')
    page.get_by_test_id("doc-confirm").click()
    expect(page.get_by_test_id("doc-error")).to_contain_text("invalid_quota")
    expect(page.get_by_test_id("doc-error")).to_contain_text("tenants.acme.quotas")

    editor.fill(TENANTS_GOOD)
    page.get_by_test_id("doc-publish").click()
    expect(page.get_by_test_id("doc-diff")).to_contain_text('+      "vcpus": 16')
    page.get_by_test_id("doc-confirm").click()
    expect(page.get_by_test_id("doc-version")).to_contain_text("version 1 by admin")
    with fleet.operator() as op:
        got = op.get(f"/api/v1/sites/{fleet.lab.site}/desired/tenants").json()
    assert got["document"] == {"tenants": {"acme": {"quotas": {"vcpus": 16}}}}

    # Someone else publishes meanwhile: this edit is refused, and its text is kept.
    with fleet.operator() as op:
        other = {"tenants": {"acme": {"quotas": {"vcpus": 8}}}}
        resp = op.put(f"/api/v1/sites/{fleet.lab.site}/desired/tenants", json=other)
        assert resp.status_code == 200, resp.text
    editor.fill(TENANTS_GOOD.replace("16", "32"))
    page.get_by_test_id("doc-publish").click()
    page.get_by_test_id("doc-confirm").click()
    expect(page.get_by_test_id("doc-error")).to_contain_text("version_mismatch")
    expect(editor).to_have_value(re.compile('"vcpus": 32'))
    page.get_by_test_id("doc-reload").click()
    expect(page.get_by_test_id("doc-version")).to_contain_text("version 2")
    page.get_by_test_id("doc-diff-button").click()
    expect(page.get_by_test_id("doc-diff")).to_contain_text('-      "vcpus": 8')
    page.screenshot(path=fleet.shots / "document.png", full_page=True)
    page.get_by_test_id("doc-publish").click()
    page.get_by_test_id("doc-confirm").click()
    expect(page.get_by_test_id("doc-version")).to_contain_text("version 3 by admin")

    # The node applies it; the site's page says so for the version it holds.
    page.goto(f"{fleet.ui_url}/sites/{fleet.lab.site}")
    status = page.get_by_test_id("desired-status-tenants")
    for _ in range(60):
        if status.inner_text() == "applied":
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(status).to_have_text("applied")
    expect(page.get_by_test_id("desired-tenants")).to_contain_text("v3 from site")

    # A services document the node refuses: the page says why, beside the document
    # and in the rejections. Given room, the next version deploys; what each service
    # came to is under the document.
    shop = {"name": "shop", "roles": [{"name": "app", "catalog": "demo", "count": 1}]}
    services = {"services": {"shop": {"tenant": "acme", "service": shop}}}
    _publish(fleet, "services", services)
    _reload_until(page, "desired-services", "rejected")
    expect(page.get_by_test_id("desired-services")).to_contain_text(
        "quota_exceeded: tenant acme would pass its vms quota"
    )
    expect(page.get_by_test_id("site-conflicts")).to_contain_text("quota_exceeded")
    room = {"vms": 2, "vcpus": 32, "memory_mib": 4096, "disk_gib": 20}  # vcpus as v3
    _publish(fleet, "tenants", {"tenants": {"acme": {"quotas": room}}})
    _reload_until(page, "desired-tenants", "v4 from site")
    _publish(fleet, "services", services)
    _reload_until(page, "desired-service-shop", "deployed")
    expect(page.get_by_test_id("desired-status-services")).to_have_text("applied")

    # A group's document can also go out as a rollout (admins only).
    _editor(page, fleet, "group:tier=edge", "vnets")
    expect(page.get_by_test_id("doc-rollout")).to_be_visible()


def _publish(fleet: Fleet, kind: str, document: dict[str, Any]) -> None:
    with fleet.operator() as op:
        resp = op.put(f"/api/v1/sites/{fleet.lab.site}/desired/{kind}", json=document)
        assert resp.status_code == 200, resp.text


def _reload_until(page: Page, test_id: str, text: str) -> None:
    """The site page is not live: reload it until the node's report arrives."""
    shown = page.get_by_test_id(test_id)
    for _ in range(60):
        page.reload()
        if shown.count() and text in shown.inner_text():
            break
        page.wait_for_timeout(500)
    expect(shown).to_contain_text(text)


def test_enrollment_creates_a_site_and_shows_its_token_once(page: Page, fleet: Fleet) -> None:
    log_in(page, fleet)
    open_ready(page, f"{fleet.ui_url}/enroll")
    expect(page.get_by_test_id("waiting-bulk-000")).to_be_visible()
    page.get_by_test_id("enroll-name").fill("cell-new")
    page.get_by_test_id("enroll-region").fill("south")
    page.get_by_test_id("enroll-labels").fill("tier=silver, zone=s1")
    page.get_by_test_id("enroll-create").click()
    token = page.get_by_test_id("enroll-token")
    expect(token).to_have_text(re.compile(r"^tbe_"))
    expect(page.get_by_test_id("enroll-warning")).to_contain_text("will not be shown again")
    expect(page.get_by_test_id("waiting-cell-new")).to_be_visible()
    page.screenshot(path=fleet.shots / "enrollment.png", full_page=True)
    secret = token.inner_text()
    # The same name again is refused with the registry's code.
    page.get_by_test_id("enroll-name").fill("cell-new")
    page.get_by_test_id("enroll-create").click()
    expect(page.get_by_test_id("enroll-error")).to_contain_text("site_exists")
    # Shown once: gone from the page once it is left.
    page.reload()
    expect(page.get_by_test_id("waiting-cell-new")).to_be_visible()
    expect(page.get_by_test_id("enroll-token")).to_have_count(0)
    assert secret not in page.content()
    # And it is a real token: a node enrolls with it.
    enrolled = httpx.post(
        f"{fleet.lab.registry.url}/api/v1/enroll",
        json={"token": secret, "hostname": "new-host"},
        timeout=30,
    )
    assert enrolled.status_code == 200, enrolled.text
    with fleet.operator() as op:
        site = op.get("/api/v1/sites/cell-new").json()
    assert (site["region"], site["labels"], site["enrolled"]) == (
        "south",
        {"tier": "silver", "zone": "s1"},
        True,
    )


def test_viewer_sees_no_edit_controls_and_the_registry_refuses_it(page: Page, fleet: Fleet) -> None:
    log_in(page, fleet, *VIEWER)
    _editor(page, fleet, f"site:{fleet.lab.site}", "tenants")
    expect(page.get_by_test_id("doc-editor")).to_have_value(re.compile('"vcpus": 32'))
    expect(page.get_by_test_id("doc-editor")).to_have_attribute("readonly", re.compile(".*"))
    expect(page.get_by_test_id("doc-publish")).to_have_count(0)
    expect(page.get_by_test_id("doc-reload")).to_have_count(0)
    _editor(page, fleet, "group:tier=edge", "vnets")
    expect(page.get_by_test_id("doc-rollout")).to_have_count(0)
    page.goto(f"{fleet.ui_url}/enroll")
    expect(page.get_by_test_id("waiting-bulk-000")).to_be_visible()
    expect(page.get_by_test_id("enroll-create")).to_have_count(0)
    page.screenshot(path=fleet.shots / "viewer-enrollment.png", full_page=True)
    token = fleet.login_token(*VIEWER)
    headers = {"Authorization": f"Bearer {token}"}
    url = fleet.lab.registry.url
    refused = httpx.put(
        f"{url}/api/v1/sites/{fleet.lab.site}/desired/tenants",
        json={"tenants": {}},
        headers=headers,
        timeout=30,
    )
    assert refused.status_code == 403, refused.text
    made = httpx.post(f"{url}/api/v1/sites", json={"name": "sneaky"}, headers=headers, timeout=30)
    assert made.status_code == 403, made.text


def test_a_site_going_offline_and_back(page: Page, fleet: Fleet) -> None:
    log_in(page, fleet)
    fleet.lab.agent.stop()
    # Offline after the stale intervals of missed heartbeats (1 s each here); the page
    # follows on its own.
    problem = page.get_by_test_id(f"problem-offline_vran-{fleet.lab.site}")
    expect(problem).to_contain_text("offline with 1 vRAN VM", timeout=60_000)
    expect(page.get_by_test_id("status-count-offline")).to_have_text("1")
    expect(page.get_by_test_id("problem-count-offline_vran")).to_have_text("offline vRAN: 1")
    page.screenshot(path=fleet.shots / "site-offline.png", full_page=True)
    page.goto(f"{fleet.ui_url}/sites?q={fleet.lab.site}")
    badge = page.get_by_test_id(f"site-status-{fleet.lab.site}")
    expect(badge).to_have_text("offline")
    fleet.lab.agent.start()
    try:
        # The list follows too, without a reload.
        expect(badge).to_have_text("online", timeout=60_000)
        page.goto(f"{fleet.ui_url}/")
        expect(page.get_by_test_id("status-count-online")).to_have_text("1")
        expect(problem).to_have_count(0)
    finally:
        # A test leaves no process it started; the last tests need no agent.
        fleet.lab.agent.stop()


def test_registry_down_shows_a_banner_and_the_ui_keeps_running(page: Page, fleet: Fleet) -> None:
    log_in(page, fleet)
    fleet.lab.registry.stop()
    try:
        banner = page.get_by_test_id("registry-banner")
        expect(banner).to_contain_text("Registry unreachable", timeout=30_000)
        expect(banner).to_contain_text("registry_unreachable")
        # The figures read before stay on the page.
        expect(page.get_by_test_id("overview-total")).not_to_be_empty()
        page.screenshot(path=fleet.shots / "registry-down.png", full_page=True)
    finally:
        fleet.lab.registry.start()
    try:
        expect(banner).to_be_empty(timeout=30_000)
        page.goto(f"{fleet.ui_url}/sites?q={fleet.lab.site}")
        expect(page.get_by_test_id(f"site-link-{fleet.lab.site}")).to_be_visible()
    finally:
        # The registry this test started goes with it (the module's was stopped above).
        fleet.lab.registry.stop()
