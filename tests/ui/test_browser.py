"""End to end in Chromium: the appliance and `towerbox ui` as processes, Playwright driving.

Screenshots land in the pytest tmp folder (``screenshots/``) as test artifacts.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.ui.conftest import chromium_or_skip
from tests.ui.stack import Appliance, appliance, chromium, local_page, ui_process
from tests.ui.tenancy import ADMIN, PASSWORD, TENANT, set_up_tenant

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@dataclass
class Stack:
    node: Appliance
    ui_url: str
    shots: Path
    sessions: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    chromium_or_skip()
    tmp = tmp_path_factory.mktemp("stack")
    shots = tmp / "screenshots"
    shots.mkdir()
    node_dir = tmp / "node"
    node_dir.mkdir()
    with appliance(node_dir) as node, ui_process(node.url, tmp) as url:
        yield Stack(node, url, shots, tmp / "ui-sessions")


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    chromium_or_skip()
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    with local_page(browser, stack.ui_url) as tab:
        yield tab


def log_in(page: Page, stack: Stack, username: str = "admin", password: str = "") -> None:
    page.goto(f"{stack.ui_url}/")
    expect(page.get_by_label("Username")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password or stack.node.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("dash-vm-total")).to_be_visible()


def test_login_by_keyboard_and_session_cookie(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.ui_url}/vms")
    expect(page).to_have_url(f"{stack.ui_url}/login?next=/vms")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill("wrong")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("login-error")).to_contain_text("Wrong username or password")
    page.screenshot(path=stack.shots / "login-error.png")

    page.get_by_label("Username").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.get_by_label("Password", exact=True).fill(stack.node.password)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{stack.ui_url}/vms")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert stack.node.password not in str(cookies)
    # The session map holds appliance tokens: private to the UI's user.
    assert stack.sessions.stat().st_mode & 0o777 == 0o700
    stored = list(stack.sessions.glob("storage-user-*.json"))
    assert stored and all(f.stat().st_mode & 0o777 == 0o600 for f in stored)


def test_create_vm_in_the_wizard_and_see_it_running(page: Page, stack: Stack) -> None:
    log_in(page, stack)
    page.screenshot(path=stack.shots / "dashboard.png", full_page=True)
    page.get_by_role("link", name="VMs").click()
    page.get_by_test_id("vm-create").click()
    page.get_by_label("Appliance").click()
    page.get_by_role("option", name="demo — other").click()
    page.get_by_test_id("create-next").click()
    page.get_by_label("Name").fill("bad name")
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_text("[invalid_name]")).to_be_visible()
    page.screenshot(path=stack.shots / "vm-create-field-error.png")
    page.get_by_label("Name").fill("browser-vm")
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_test_id("vm-state-browser-vm")).to_have_text("running")
    page.screenshot(path=stack.shots / "vms.png", full_page=True)

    # A change made elsewhere shows up without a reload.
    with stack.node.http() as api:
        assert api.post("/api/v1/vms/browser-vm/stop").status_code == 200
    expect(page.get_by_test_id("vm-state-browser-vm")).to_have_text("shutoff")
    with stack.node.http() as api:
        assert api.post("/api/v1/vms/browser-vm/start").status_code == 200
    expect(page.get_by_test_id("vm-state-browser-vm")).to_have_text("running")

    page.get_by_test_id("vm-link-browser-vm").click()
    expect(page.get_by_test_id("vm-state")).to_have_text("running")
    expect(page.get_by_test_id("vm-chart-note")).to_contain_text("samples")
    page.screenshot(path=stack.shots / "vm-detail.png", full_page=True)
    page.get_by_test_id("vm-action-delete").click()
    page.get_by_test_id("confirm-yes").click()
    expect(page).to_have_url(f"{stack.ui_url}/vms")
    with stack.node.http() as api:
        assert api.get("/api/v1/vms/browser-vm").status_code == 404


def test_apply_a_gpu_layout_and_see_the_slot_map_change(page: Page, stack: Stack) -> None:
    log_in(page, stack)
    page.goto(f"{stack.ui_url}/gpus")
    memory = page.get_by_test_id("slotmap-memory").first
    expect(memory.locator('[data-role="free"]')).to_have_count(8)
    page.get_by_label("1g.10gb count").fill("3")
    page.get_by_test_id("gpu-plan-0").click()
    expect(page.get_by_test_id("plan-line")).to_have_count(3)
    expect(page.get_by_test_id("plan-drain")).to_contain_text("Workloads to drain: none")
    page.screenshot(path=stack.shots / "gpu-plan.png", full_page=True)
    page.get_by_test_id("gpu-apply-0").click()
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_text("Layout applied: 3 operation(s)")).to_be_visible()
    expect(memory.locator('[data-role="b2b"]')).to_have_count(3)
    expect(memory.locator('[data-role="free"]')).to_have_count(5)
    page.screenshot(path=stack.shots / "gpus.png", full_page=True)
    with stack.node.http() as api:
        gpu = api.get("/api/v1/gpus").json()["gpus"][0]
        assert len(gpu["layout"]["instances"]) == 3
        api.post(f"/api/v1/gpus/{gpu['uuid']}/apply", json={"instances": []})
    # The reset made through the API reaches the open page too.
    expect(memory.locator('[data-role="free"]')).to_have_count(8)


def test_wan_banner_turns_offline(page: Page, stack: Stack) -> None:
    """Driven through PUT /api/v1/sync/status, the route the edge agent reports on."""
    log_in(page, stack)
    banner = page.get_by_test_id("wan-banner")
    report = {
        "state": "online",
        "registry_url": "http://registry.invalid",
        "site": "test-node",
        "queued": 0,
        "acked_seq": 3,
        "since": "2026-01-02T03:00:00Z",
        "last_sync_at": "2026-01-02T03:04:00Z",
        "heartbeat_s": 30,
    }
    with stack.node.http() as api:
        assert api.put("/api/v1/sync/status", json=report).status_code == 200
    expect(banner).to_have_attribute("data-tone", "online")
    expect(banner).to_contain_text("WAN online")
    with stack.node.http() as api:
        offline = {
            **report,
            "state": "offline",
            "since": "2026-01-02T03:05:00Z",
            "queued": 7,
            "last_error": "registry unreachable: connection refused",
        }
        assert api.put("/api/v1/sync/status", json=offline).status_code == 200
    expect(banner).to_have_attribute("data-tone", "offline")
    expect(banner).to_contain_text("WAN offline since 2026-01-02 03:05:00 UTC")
    expect(banner).to_contain_text("registry unreachable")
    page.screenshot(path=stack.shots / "wan-offline.png")


def test_gpu_n6_and_events_pages_render(page: Page, stack: Stack) -> None:
    log_in(page, stack)
    with stack.node.http() as api:
        api.post("/api/v1/tenants", json={"name": "acme"})
        api.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs", "ports": ["ens2f0"]})
        api.post(
            "/api/v1/n6/vnets",
            json={
                "tenant": "acme",
                "name": "llm",
                "trunk": "br-n6",
                "vlan": 100,
                "subnet": "10.100.0.0/24",
                "gateway": "10.100.0.1",
                "ue_pools": ["10.45.0.0/16"],
                "dnns": ["internet"],
            },
        )
    page.goto(f"{stack.ui_url}/n6")
    expect(page.get_by_test_id("n6-tenant-acme")).to_contain_text("10.45.0.0/16")
    page.get_by_test_id("n6-plan").click()
    expect(page.get_by_test_id("n6-change").first).to_be_visible()
    page.screenshot(path=stack.shots / "n6.png", full_page=True)
    page.goto(f"{stack.ui_url}/events")
    expect(page.get_by_test_id("events-table")).to_contain_text("tenant.created")
    page.get_by_label("Filter events").fill("vnet")
    page.screenshot(path=stack.shots / "events.png", full_page=True)
    # A line opens the entry's whole state.
    page.get_by_label("Filter events").fill("tenant acme")
    page.get_by_role("row").filter(has_text="tenant.created").first.click()
    expect(page.get_by_text("tenant.created · tenant acme")).to_be_visible()
    expect(page.get_by_test_id("events-state")).to_be_visible()


def test_n6_trunk_and_vnet_declared_from_the_page_and_applied(page: Page, stack: Stack) -> None:
    with stack.node.http() as api:
        assert api.post("/api/v1/tenants", json={"name": "webco"}).status_code in (201, 409)
    log_in(page, stack)
    page.goto(f"{stack.ui_url}/n6")
    page.get_by_test_id("n6-new-trunk").click()
    page.get_by_test_id("n6-trunk-name").fill("br-web")
    page.get_by_test_id("n6-trunk-ports").fill("ens7f0")
    page.get_by_test_id("n6-trunk-save").click()
    expect(page.get_by_test_id("n6-trunks")).to_contain_text("br-web (ovs) · ports ens7f0")

    page.get_by_test_id("n6-new-vnet").click()
    page.get_by_test_id("n6-vnet-tenant").click()
    page.get_by_role("option", name="webco").click()
    page.get_by_test_id("n6-vnet-trunk").click()
    page.get_by_role("option", name="br-web").click()
    typed = {
        "name": "web",
        "vlan": "5000",
        "subnet": "10.135.0.0/24",
        "gateway": "10.135.0.1",
        "dnns": "internet",
        "ue_pools": "10.136.0.0/16",
    }
    for key, value in typed.items():
        page.get_by_test_id(f"n6-vnet-{key}").fill(value)
    page.get_by_test_id("n6-vnet-save").click()
    # Refused at the VLAN input, with the valid range; the rest stays as typed.
    vlan_field = page.locator(".q-field", has=page.get_by_test_id("n6-vnet-vlan"))
    expect(vlan_field).to_contain_text("[invalid_vlan]")
    expect(vlan_field).to_contain_text("use a number from 1 to 4094")
    expect(page.get_by_test_id("n6-vnet-subnet")).to_have_value("10.135.0.0/24")
    page.screenshot(path=stack.shots / "n6-vnet-field-error.png")
    page.get_by_test_id("n6-vnet-vlan").fill("350")
    page.get_by_test_id("n6-vnet-save").click()
    table = page.get_by_test_id("n6-tenant-webco")
    expect(table).to_contain_text("10.135.0.0/24 via 10.135.0.1")
    expect(page.get_by_test_id("n6-pending")).to_contain_text("when you Apply")
    expect(page.get_by_test_id("n6-change").filter(has_text="VLAN 350").first).to_be_visible()

    page.get_by_test_id("n6-apply").click()
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_text("N6 applied")).to_be_visible()
    expect(page.get_by_test_id("n6-pending")).to_be_hidden()
    expect(table.get_by_role("row").filter(has_text="web")).to_contain_text("yes")
    page.screenshot(path=stack.shots / "n6-applied.png", full_page=True)
    with stack.node.http() as api:
        state = {s["vnet"]: s for s in api.get("/api/v1/n6/state").json()}
        assert state["webco/web"]["applied"] is True
        assert state["webco/web"]["vlan"] == 350


def test_tenants_page_bars_and_a_quota_lowered_below_usage(page: Page, stack: Stack) -> None:
    with stack.node.http() as api:
        set_up_tenant(api)
    log_in(page, stack)
    page.get_by_role("link", name="Tenants").click()
    card = page.get_by_test_id(f"tenant-{TENANT}")
    expect(card.get_by_test_id(f"tenant-{TENANT}-text-vnets")).to_have_text("1 of 2")
    expect(card.get_by_test_id(f"tenant-{TENANT}-bar-vnets")).to_have_attribute(
        "data-over", "false"
    )
    page.get_by_test_id(f"tenant-edit-{TENANT}").click()
    page.get_by_label("VNets", exact=True).fill("0")
    page.get_by_test_id("tenant-save-quotas").click()
    expect(page.get_by_test_id("tenant-message")).to_contain_text(
        "new allocations of these are refused"
    )
    page.screenshot(path=stack.shots / "tenant-edit.png")
    page.get_by_role("button", name="Close").click()
    expect(card.get_by_test_id(f"tenant-{TENANT}-bar-vnets")).to_have_attribute("data-over", "true")
    expect(card.get_by_test_id(f"tenant-{TENANT}-over")).to_contain_text("vnets")
    page.screenshot(path=stack.shots / "tenants.png", full_page=True)
    with stack.node.http() as api:
        assert api.put(f"/api/v1/tenants/{TENANT}/quotas", json={"vnets": 2}).is_success


def test_tenant_admin_card_wizard_and_a_vm_with_a_gpu_slice(page: Page, stack: Stack) -> None:
    with stack.node.http() as api:
        set_up_tenant(api)
        gpu = api.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
        # One free B2B 1g.10gb slice for the VM to take when it starts.
        assert api.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 1}}).is_success
    log_in(page, stack, ADMIN, PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="VMs")).to_be_visible()
    expect(nav.get_by_role("link", name="Tenants")).to_have_count(0)
    expect(page.get_by_test_id("dash-tenant-text-vms")).to_have_text("0 of 4")
    page.screenshot(path=stack.shots / "tenant-dashboard.png", full_page=True)
    page.goto(f"{stack.ui_url}/tenants")
    expect(page.get_by_test_id("tenants-refused")).to_be_visible()

    page.goto(f"{stack.ui_url}/vms")
    page.get_by_test_id("vm-create").click()
    page.get_by_label("Appliance").click()
    page.get_by_role("option", name="demo — other").click()
    page.get_by_test_id("create-next").click()
    page.get_by_label("Role").click()
    expect(page.get_by_role("option")).to_have_text(["other", "b2b"])
    page.get_by_role("option", name="b2b").click()
    for hidden in ("create-pinned", "create-isolated", "create-hugepages", "create-numa"):
        expect(page.get_by_test_id(hidden)).to_be_hidden()
    page.get_by_label("GPU slice (MIG)").click()
    expect(page.get_by_role("option")).to_have_text(["none", "1g.10gb"])
    page.get_by_role("option", name="1g.10gb").click()
    page.get_by_label("NIC on VNet").click()
    expect(page.get_by_role("option")).to_have_text(["none", "llm"])
    page.get_by_role("option", name="llm").click()
    page.get_by_label("Name").fill("gpu-vm")
    # Past the quota (8), within the host (32 threads): the API's refusal, form kept.
    page.get_by_label("vCPUs").fill("16")
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_text("[quota_exceeded]").first).to_be_visible()
    expect(page.get_by_label("Name")).to_have_value("gpu-vm")
    page.screenshot(path=stack.shots / "tenant-wizard-refused.png")
    page.get_by_label("vCPUs").fill("1")
    page.get_by_test_id("create-submit").click()
    expect(page.get_by_test_id("vm-state-gpu-vm")).to_have_text("running")
    with stack.node.http() as api:
        vm = api.get("/api/v1/vms/gpu-vm").json()
        assert vm["tenant"] == TENANT and vm["gpu"]["profile"] == "1g.10gb"
        assert api.delete("/api/v1/vms/gpu-vm").status_code == 204
        assert api.post(f"/api/v1/gpus/{gpu}/apply", json={"instances": []}).is_success


def test_usage_page_draws_a_chart_and_totals_and_downloads_the_csv(
    page: Page, stack: Stack
) -> None:
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    with stack.node.http() as api:
        set_up_tenant(api)  # acme's VNet llm: usage from its declaration on
        # A unit-second costs 1 EUR, so the seconds the test runs show as money.
        book = {"effective_from": hour.isoformat(), "currency": "EUR", "rates": {"vnet": 3600.0}}
        assert api.post("/api/v1/prices", json=book).status_code == 201
    log_in(page, stack, ADMIN, PASSWORD)
    expect(page.get_by_test_id("dash-tenant-cost")).to_have_text(re.compile(r"This month: .+ EUR"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    expect(page).to_have_url(f"{stack.ui_url}/usage")
    chart = page.get_by_test_id("usage-chart-vnet")
    expect(chart.locator("canvas").first).to_be_visible()
    expect(page.get_by_test_id("usage-table")).to_contain_text("VNet-hour")
    expect(page.get_by_test_id("usage-total")).to_have_text(re.compile(r"Total: [\d,]+\.\d\d EUR"))
    expect(page.get_by_test_id("price-current")).to_contain_text("EUR")
    page.screenshot(path=stack.shots / "usage.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_test_id("usage-csv").click()
    assert download.value.suggested_filename.startswith(f"usage-{TENANT}-")
    rows = Path(download.value.path()).read_text().splitlines()
    assert rows[0].startswith("tenant,resource,unit,period")
    assert any(row.startswith(f"{TENANT},vnet,VNet-hour,") for row in rows[1:])


def test_a_reshape_that_leaves_a_vm_waiting_is_shown_with_its_reason(
    page: Page, stack: Stack
) -> None:
    with stack.node.http() as api:
        gpu = api.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
        assert api.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"2g.20gb": 1}}).is_success
        spec = {"role": "b2b", "gpu": {"profile": "2g.20gb"}}
        body = {"name": "waits", "appliance": "demo", "spec": spec, "start": True}
        made = api.post("/api/v1/vms", json=body)
        assert made.status_code == 201, made.text
        # The night layout has no 2g.20gb: the VM is drained and left off.
        assert api.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 4}}).is_success
    try:
        log_in(page, stack)
        attention = page.get_by_test_id("dash-attention").filter(has_text="waits")
        expect(attention).to_contain_text("waiting for a GPU slice")
        expect(attention).to_contain_text("no_free_gpu_slice")
        page.screenshot(path=stack.shots / "dashboard-attention.png", full_page=True)
        page.goto(f"{stack.ui_url}/vms")
        expect(page.get_by_test_id("vm-attention-waits")).to_have_text("waiting for a GPU slice")
        page.goto(f"{stack.ui_url}/vms/waits")
        expect(page.get_by_test_id("vm-attention")).to_contain_text("desired running, shutoff")
        expect(page.get_by_test_id("vm-attention")).to_contain_text("no_free_gpu_slice")
    finally:
        with stack.node.http() as api:
            api.delete("/api/v1/vms/waits")
            api.post(f"/api/v1/gpus/{gpu}/apply", json={"instances": []})


def test_a_dry_run_says_a_process_claim_would_block_the_apply(page: Page, stack: Stack) -> None:
    with stack.node.http() as api:
        gpu = api.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
        assert api.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"2g.20gb": 1}}).is_success
        claim = api.post("/api/v1/gpus/claims", json={"name": "vllm", "profile": "2g.20gb"})
        assert claim.status_code == 201, claim.text
    try:
        log_in(page, stack)
        page.goto(f"{stack.ui_url}/gpus")
        expect(page.get_by_label("2g.20gb count")).to_have_value("1")  # the layout it has
        page.get_by_label("2g.20gb count").fill("0")
        page.get_by_label("1g.10gb count").fill("2")
        page.get_by_test_id("gpu-plan-0").click()
        expect(page.get_by_test_id("plan-blocked")).to_contain_text("gpu_claimed_by_process")
        expect(page.get_by_test_id("plan-workload")).to_contain_text("process:vllm")
        expect(page.get_by_test_id("gpu-apply-0")).to_be_disabled()
        page.screenshot(path=stack.shots / "gpu-plan-blocked.png", full_page=True)
    finally:
        with stack.node.http() as api:
            api.delete("/api/v1/gpus/claims/vllm")
            api.post(f"/api/v1/gpus/{gpu}/apply", json={"instances": []})


def test_a_tenant_plans_and_rolls_a_new_model_onto_its_service(page: Page, stack: Stack) -> None:
    with stack.node.http() as api:
        set_up_tenant(api)
        role = {"name": "web", "catalog": "demo", "values": {"model": "m-1"}}
        service = {"service": {"name": "chat", "roles": [role]}, "tenant": TENANT}
        assert api.post("/api/v1/services", json=service).status_code == 202
    try:
        log_in(page, stack, ADMIN, PASSWORD)
        page.goto(f"{stack.ui_url}/services")
        expect(page.get_by_test_id("service-state-chat")).to_have_text("ready", timeout=60_000)
        page.get_by_test_id("service-update-chat").click()
        expect(page.get_by_text("Update a role of chat")).to_be_visible()
        model = page.get_by_label("model")
        expect(model).to_have_value("m-1")
        model.fill("m-2")
        page.get_by_test_id("update-dry-run").click()
        plan = page.get_by_test_id("update-plan")
        expect(plan).to_contain_text("at least 1 healthy at every moment")
        expect(plan).to_contain_text("1. make new replica 1")
        page.screenshot(path=stack.shots / "service-update-plan.png")
        page.get_by_test_id("update-submit").click()
        expect(page.get_by_text("update (done)")).to_be_visible(timeout=60_000)
        with stack.node.http() as api:
            view = api.get("/api/v1/services/chat").json()
            assert view["roles"][0]["values"] == {"model": "m-2"}
            assert [r["generation"] for r in view["roles"][0]["replicas"]] == [1]
    finally:
        with stack.node.http() as api:
            api.delete("/api/v1/services/chat")
            end = time.monotonic() + 30
            while api.get("/api/v1/services/chat").status_code != 404:
                assert time.monotonic() < end, "the service was not removed"
                time.sleep(0.2)
