"""The top page and a VM's charts in Chromium: the appliance (libvirt test driver, a
simulated H100) and `towerbox ui` as processes, Playwright driving.

A VM on a MIG slice whose vGPU the simulator reports 60 % busy, beside one without:
/top lists both and sorts by GPU activity on a click; a tenant sees only its own;
the VM's page draws its charts (canvases) with their series filled, the GPU slice's
included."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.ui import test_browser
from tests.ui.conftest import chromium_or_skip
from tests.ui.stack import appliance, ui_process
from tests.ui.tenancy import ADMIN, PASSWORD, set_up_tenant

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# The browser, and a tab that may load nothing from outside the node, as the other
# Chromium tests have them, on this module's stack.
browser = test_browser.browser
page = test_browser.page
log_in = test_browser.log_in
Stack = test_browser.Stack


def _ok(resp: httpx.Response, status: int = 200) -> None:
    assert resp.status_code == status, resp.text


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    chromium_or_skip()
    tmp = tmp_path_factory.mktemp("top")
    shots = tmp / "screenshots"
    shots.mkdir()
    with appliance(tmp / "node") as node, ui_process(node.url, tmp) as url:
        with node.http() as api:
            set_up_tenant(api)
            gpu = api.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
            _ok(api.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 4}}))
            hot = {"role": "b2b", "gpu": {"profile": "1g.10gb"}}
            for name, spec in (("hot", hot), ("cold", {"role": "b2b"})):
                body = {"name": name, "appliance": "demo", "spec": spec, "start": True}
                _ok(api.post("/api/v1/vms", json=body), 201)
        try:
            yield Stack(node, url, shots, tmp / "ui-sessions")
        finally:
            with node.http() as api:
                for name in ("hot", "cold"):
                    api.post(f"/api/v1/vms/{name}/stop")
                    api.delete(f"/api/v1/vms/{name}")


def _names(page: Page) -> list[str]:
    return page.get_by_test_id("top-vms").locator("tbody tr td:nth-child(1)").all_inner_texts()


def test_top_lists_the_vms_and_sorts_by_gpu_activity(page: Page, stack: Stack) -> None:
    log_in(page, stack)
    page.get_by_role("link", name="Top", exact=True).click()
    expect(page).to_have_url(f"{stack.ui_url}/top")
    table = page.get_by_test_id("top-vms")
    expect(table.get_by_test_id("top-vm-hot")).to_be_visible()
    expect(table.get_by_test_id("top-vm-cold")).to_be_visible()
    hot = table.locator("tbody tr", has=page.get_by_test_id("top-vm-hot"))
    expect(hot).to_contain_text("1g.10gb@")
    expect(hot).to_contain_text("60.0%")  # live: the page fills it from the next sweeps
    # Sorted by GPU activity (a click on its header, busiest first after the second).
    header = table.get_by_role("columnheader", name=re.compile("GPU busy"))
    header.click()
    expect(header).to_have_class(re.compile(r"\bsorted\b"))
    if "sort-desc" not in (header.get_attribute("class") or ""):
        header.click()
        expect(header).to_have_class(re.compile(r"\bsort-desc\b"))
    expect(table.locator("tbody tr td:nth-child(1)")).to_have_text(["hot", "cold"])
    slices = page.get_by_test_id("top-slices")
    busy = slices.locator("tbody tr", has_text="hot")
    expect(busy).to_contain_text("60.0%")
    expect(slices.locator("tbody tr")).to_have_count(4)
    page.screenshot(path=stack.shots / "top.png", full_page=True)


def test_a_tenant_sees_only_its_own_on_top(page: Page, stack: Stack) -> None:
    body = {"name": "acme-vm", "appliance": "demo", "spec": {"role": "b2b", "tenant": "acme"}}
    with stack.node.http() as api:
        _ok(api.post("/api/v1/vms", json=body), 201)
    try:
        log_in(page, stack, ADMIN, PASSWORD)
        page.goto(f"{stack.ui_url}/top")
        expect(page.get_by_test_id("top-vm-acme-vm")).to_be_visible()
        expect(page.get_by_test_id("top-vm-hot")).to_have_count(0)
        expect(page.get_by_test_id("top-vm-cold")).to_have_count(0)
        assert _names(page) == ["acme-vm"]
    finally:
        with stack.node.http() as api:
            api.delete("/api/v1/vms/acme-vm")


def test_the_vm_page_draws_its_charts_with_their_series(page: Page, stack: Stack) -> None:
    log_in(page, stack)
    page.goto(f"{stack.ui_url}/vms/hot")
    for marker in ("cpu", "mem", "net", "disk", "gpu"):
        chart = page.get_by_test_id(f"vm-chart-{marker}")
        expect(chart.locator("canvas")).to_have_count(1)
    # ECharts' aria description names each series with its values once they are
    # filled: the slice's 60 % busy, the CPU's 0 on the test driver.
    gpu = page.get_by_test_id("vm-chart-gpu")
    expect(gpu).to_have_attribute("aria-label", re.compile(r"busy.*60"))
    expect(page.get_by_test_id("vm-chart-cpu")).to_have_attribute(
        "aria-label", re.compile(r"cpu.*\b0\b")
    )
    expect(page.get_by_test_id("vm-chart-gpu-note")).to_contain_text("Memory used on its slice")
    page.screenshot(path=stack.shots / "vm-charts.png", full_page=True)
    # A VM without a slice shows no GPU chart, and says why.
    page.goto(f"{stack.ui_url}/vms/cold")
    expect(page.get_by_test_id("vm-chart-cpu").locator("canvas")).to_have_count(1)
    expect(page.get_by_test_id("vm-chart-gpu-note")).to_contain_text("holds no GPU slice")
    expect(page.get_by_test_id("vm-chart-gpu")).to_be_hidden()
