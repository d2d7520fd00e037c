"""The Usage page and the dashboard's month cost, in NiceGUI's User simulation against an
appliance in this process, so the journal runs on the test's clock: usage over two
days comes out as hand-computed unit-hours and money."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from nicegui import ui
from nicegui.testing.user import User

from appliance.api.app import create_app
from appliance.context import Appliance
from appliance.store import journal
from tests.support.appliance import admin_password
from tests.support.tenancy import PASSWORD, clients, tenant_node
from tests.ui.simulation import simulated_ui
from ui.api import ApplianceApi

pytestmark = pytest.mark.anyio

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
RATES = "vcpu = 0.5\nmemory_gib = 0.1\nvnet = 0.25"


class Clock:
    """The journal's clock: from the first of next month, 00:00 UTC, so the whole story
    falls in one month whatever day the test runs."""

    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.t0 = (now.replace(day=1) + 32 * DAY).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0
        )
        self.now = self.t0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    fake = Clock()
    previous = journal.set_clock(fake)
    yield fake
    journal.set_clock(previous)


@pytest.fixture
def node(tmp_path: Path, clock: Clock) -> Iterator[Appliance]:
    """acme's VM: started at t0, stopped at t0 + 1 day, started again at + 1 day 12 h;
    the pages are looked at + 1 day 18 h: 30 h of 2 vCPUs and 512 MiB, 42 h of a VNet."""
    saved = clock.now
    clock.now = clock.t0 - 2 * HOUR  # the tenants and their VNets, before t0
    for appliance in tenant_node(tmp_path):
        for c, _, acme in clients(appliance):
            clock.now = saved
            _story(c, acme, clock)
        yield appliance


def _story(c: TestClient[Any], acme: dict[str, str], clock: Clock) -> None:
    spec = {"role": "b2b", "vcpus": 2, "memory_mib": 512}
    body = {"name": "web", "appliance": "demo", "spec": spec, "start": True}
    assert c.post("/api/v1/vms", headers=acme, json=body).status_code == 201
    clock.now = clock.t0 + DAY
    assert c.post("/api/v1/vms/web/stop", headers=acme).status_code == 200
    clock.now = clock.t0 + DAY + 12 * HOUR
    assert c.post("/api/v1/vms/web/start", headers=acme).status_code == 200
    clock.now = clock.t0 + DAY + 18 * HOUR


@pytest.fixture
async def user(node: Appliance, tmp_path: Path) -> AsyncIterator[User]:
    api = ApplianceApi("http://appliance", transport=httpx.ASGITransport(app=create_app(node)))
    async with simulated_ui("http://appliance", tmp_path / "sessions", api) as simulated:
        yield simulated


async def _log_in(user: User, username: str, password: str) -> None:
    await user.open("/login")
    user.find("Username").type(username)
    user.find("Password").type(password)
    user.find("Log in").click()
    await user.should_see(marker="dash-vm-total", retries=50)


def _add_prices(node: Appliance, clock: Clock) -> None:
    book = {
        "effective_from": clock.t0.isoformat(),
        "currency": "EUR",
        "rates": {"vcpu": 0.5, "memory_gib": 0.1, "vnet": 0.25},
    }
    # The operator set the prices when the month's story began: a version never
    # starts before the hour under way.
    now, clock.now = clock.now, clock.t0 + dt.timedelta(minutes=30)
    for c, admin, _ in clients(node):
        assert c.post("/api/v1/prices", headers=admin, json=book).status_code == 201
    clock.now = now


def _rows(user: User) -> dict[str, dict[str, str]]:
    table = user.find(kind=ui.table, marker="usage-table").elements.pop()
    return {r["key"]: {"quantity": r["quantity"], "cost": r["cost"]} for r in table.rows}


def _chart(user: User, resource: str) -> dict[str, Any]:
    charts = user.find(kind=ui.echart, marker=f"usage-chart-{resource}").elements
    assert len(charts) == 1
    options: dict[str, Any] = charts.pop().options
    return options


async def test_a_tenant_sees_its_month_cost_charts_totals_and_csv(
    user: User, node: Appliance, clock: Clock
) -> None:
    _add_prices(node, clock)
    await _log_in(user, "acme-admin", PASSWORD)
    # vCPU 60 h x 0.5 + memory 15 GiB-h x 0.1 + VNet 42 h x 0.25
    await user.should_see("This month: 42.00 EUR", retries=30)

    await user.open("/usage")
    await user.should_see(marker="usage-table", retries=30)
    await user.should_see("Total: 42.00 EUR")
    assert _rows(user)["acme/vcpu"] == {"quantity": "60.00 vCPU-hour", "cost": "30.00 EUR"}
    await user.should_not_see(marker="usage-tenant")  # no tenant to pick
    await user.should_not_see(marker="price-add")  # the price book is read-only
    await user.should_see(marker="price-rates-table")
    vcpu = _chart(user, "vcpu")
    assert vcpu["xAxis"]["data"] == [clock.t0.strftime("%m-%d"), (clock.t0 + DAY).strftime("%m-%d")]
    assert [(s["name"], s["data"]) for s in vcpu["series"]] == [("acme", [48.0, 12.0])]
    assert [s["data"] for s in _chart(user, "vnet")["series"]] == [[24.0, 18.0]]

    user.find(marker="usage-csv").click()
    csv = (await user.download.next(timeout=5)).text.strip().splitlines()
    assert csv[0] == "tenant,resource,unit,period,quantity,seconds,cost,currency"
    assert {row.split(",")[0] for row in csv[1:]} == {"acme"}
    assert f"acme,vcpu,vCPU-hour,{clock.t0.isoformat()},48.0,172800.0,24.0,EUR" in csv


async def test_an_infra_admin_picks_tenants_and_adds_a_price_version(
    user: User, node: Appliance, clock: Clock
) -> None:
    await _log_in(user, "admin", admin_password(node.cfg))
    await user.should_not_see(marker="dash-tenant-cost")  # the admin has no tenant card
    await user.open("/usage")
    await user.should_see(marker="usage-table", retries=30)
    await user.should_see("No price book: quantities only.")
    await user.should_see(marker="price-none")
    vnet = _chart(user, "vnet")
    assert {s["name"]: s["data"] for s in vnet["series"]} == {
        "acme": [24.0, 18.0],
        "beta": [24.0, 18.0],
    }

    # The admin prices the month while its first hour is under way (a version never
    # starts before the hour under way), then looks again at the month's end.
    now, clock.now = clock.now, clock.t0 + dt.timedelta(minutes=30)
    # A refused version: the appliance's message and code, and the text stays.
    user.find(kind=ui.input, marker="price-effective").elements.pop().value = clock.t0.isoformat()
    rates = user.find(kind=ui.textarea, marker="price-rates").elements.pop()
    rates.value = RATES + "\ncpu = 1"
    user.find(marker="price-add-button").click()
    await user.should_see("[unknown_resource]", retries=30)
    assert rates.value == RATES + "\ncpu = 1"
    rates.value = RATES
    user.find(marker="price-add-button").click()
    await user.should_see(marker="price-current", retries=30)
    clock.now = now
    await user.open("/usage")
    await user.should_see("Total: 52.50 EUR", retries=30)  # acme's 42.00 and beta's VNet

    picker = user.find(kind=ui.select, marker="usage-tenant").elements.pop()
    assert set(picker.options) == {"", "acme", "beta"}
    picker.value = "beta"
    await user.should_see("Total: 10.50 EUR", retries=30)
    assert _chart(user, "vnet")["series"] == [
        {"name": "beta", "type": "bar", "stack": "tenants", "data": [24.0, 18.0]}
    ]
    await user.should_not_see(marker="usage-chart-vcpu")


async def test_an_infra_admin_withdraws_a_version_not_yet_in_effect(
    user: User, node: Appliance, clock: Clock
) -> None:
    _add_prices(node, clock)
    later = (clock.now.replace(minute=0, second=0, microsecond=0) + 2 * HOUR).isoformat()
    book = {"effective_from": later, "currency": "EUR", "rates": {"vcpu": 0.9}}
    for c, admin, _ in clients(node):
        assert c.post("/api/v1/prices", headers=admin, json=book).status_code == 201
    await _log_in(user, "admin", admin_password(node.cfg))
    await user.open("/usage")
    await user.should_see(f"Next: effective {later}", retries=30)
    # Only a version ahead has the button: the one in effect has none.
    await user.should_not_see(marker=f"price-withdraw-{clock.t0.isoformat()}")
    user.find(marker=f"price-withdraw-{later}").click()
    await user.should_see("Withdraw this price version?", retries=30)
    user.find(marker="confirm-yes").click()
    await user.should_see(f"Price version effective {later} withdrawn", retries=30)
    await user.should_not_see(f"Next: effective {later}", retries=30)
    for c, admin, _ in clients(node):
        versions = c.get("/api/v1/prices", headers=admin).json()["versions"]
        assert [v["effective_from"] for v in versions] == [clock.t0.isoformat()]
