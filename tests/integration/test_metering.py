"""Metering from the journal on a scripted clock: a tenant's VM, its MIG claim and
VNet come back as exactly the hand-computed hours; rated by versioned price books;
the same after compaction and after a restart; one tenant never sees another's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from appliance.context import Appliance
from appliance.services.metering import MeteringService
from appliance.services.uptime import Uptime
from appliance.store import journal
from appliance.store.compaction import compact
from appliance.store.journal_clock import MonotonicClock
from appliance.store.models import Vm
from tests.support.appliance import login
from tests.support.journal_clock import Clock
from tests.support.tenancy import PASSWORD, clients, tenant_node

Api = tuple[TestClient[Any], dict[str, str], dict[str, str]]
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from tenant_node(tmp_path)


@pytest.fixture
def api(appliance: Appliance) -> Iterator[Api]:
    for c, admin, acme in clients(appliance):
        gpu = c.get("/api/v1/gpus", headers=admin).json()["gpus"][0]["uuid"]
        body = {"counts": {"1g.10gb": 4}}
        assert c.post(f"/api/v1/gpus/{gpu}/apply", headers=admin, json=body).status_code == 200
        quotas = {"process_claims": 2, "gpu_slices": {"1g.10gb": 2}, "gpu_compute_slices": 2}
        assert c.put("/api/v1/tenants/acme/quotas", headers=admin, json=quotas).status_code == 200
        yield c, admin, acme


def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def _lines(report: dict[str, Any]) -> dict[tuple[str | None, str], float]:
    return {(x["tenant"], x["resource"]): x["quantity"] for x in report["lines"]}


def _scenario(c: TestClient[Any], acme: dict[str, str], clock: Clock) -> None:
    """t0 create+start (2 vCPUs, 512 MiB); +15 min claim a slice; +45 min release it;
    +1 h stop; +1.5 h start again; the report is taken at +2 h."""
    body = {
        "name": "web",
        "appliance": "demo",
        "spec": {"role": "b2b", "vcpus": 2, "memory_mib": 512},
    }
    _ok(c.post("/api/v1/vms", headers=acme, json={**body, "start": True}), 201)
    clock.at(minutes=15)
    _ok(
        c.post("/api/v1/gpus/claims", headers=acme, json={"name": "vllm", "profile": "1g.10gb"}),
        201,
    )
    clock.at(minutes=45)
    assert c.delete("/api/v1/gpus/claims/vllm", headers=acme).status_code == 204
    clock.at(hours=1)
    _ok(c.post("/api/v1/vms/web/stop", headers=acme))
    clock.at(hours=1.5)
    _ok(c.post("/api/v1/vms/web/start", headers=acme))
    clock.at(hours=2)


EXPECTED = {
    ("acme", "vcpu"): 3.0,  # 2 vCPUs x (1 h + 0.5 h)
    ("acme", "memory_gib"): 0.75,  # 0.5 GiB x 1.5 h
    ("acme", "mig:1g.10gb"): 0.5,  # one slice for 30 minutes
    ("acme", "vnet"): 2.0,  # its VNet, declared before t0, all along
    ("beta", "vnet"): 2.0,
}


def test_usage_is_the_hand_computed_intervals(appliance: Appliance, api: Api, clock: Clock) -> None:
    c, admin, acme = api
    _scenario(c, acme, clock)
    period = {"from": clock.iso(), "to": clock.iso(hours=2)}
    everyone = _ok(c.get("/api/v1/usage", headers=admin, params=period))
    assert _lines(everyone) == EXPECTED
    slice_line = next(x for x in everyone["lines"] if x["resource"] == "mig:1g.10gb")
    assert (slice_line["seconds"], slice_line["unit"]) == (1800.0, "slice-hour")
    # Up to now (+2 h) without a "to": the running VM's open interval counts up to now.
    assert (
        _lines(_ok(c.get("/api/v1/usage", headers=admin, params={"from": clock.iso()}))) == EXPECTED
    )
    hourly = _ok(c.get("/api/v1/usage", headers=admin, params={**period, "group_by": "hour"}))
    vcpu = {x["period"]: x["quantity"] for x in hourly["lines"] if x["resource"] == "vcpu"}
    assert vcpu == {clock.iso(): 2.0, clock.iso(hours=1): 1.0}

    # The node's journal rebuilt by a fresh service (a restart) and after compaction.
    assert _lines(_ok(c.get("/api/v1/usage", headers=admin, params=period))) == EXPECTED
    appliance.metering = MeteringService()
    assert _lines(_ok(c.get("/api/v1/usage", headers=admin, params=period))) == EXPECTED
    with journal.acting_as(journal.NODE_ACTOR):
        result = compact(0, 365, before=appliance.metering.write_rollup)
    assert result.deleted > 0
    appliance.metering = MeteringService()
    assert _lines(_ok(c.get("/api/v1/usage", headers=admin, params=period))) == EXPECTED
    assert _lines(
        _ok(c.get("/api/v1/usage", headers=admin, params={**period, "group_by": "hour"}))
    ) == _lines(hourly)


def test_a_report_after_compaction_counts_what_it_dropped_unread(
    appliance: Appliance, api: Api, clock: Clock
) -> None:
    """The node's ledger follows the journal between reports; a compaction that drops
    entries it has not read yet (the stop under a later start) must not lose them."""
    c, admin, acme = api
    period = {"from": clock.iso(), "to": clock.iso(hours=2)}
    body = {"name": "web", "appliance": "demo", "spec": {"role": "b2b", "vcpus": 2}}
    _ok(c.post("/api/v1/vms", headers=acme, json={**body, "start": True}), 201)
    _ok(c.get("/api/v1/usage", headers=admin, params=period))  # the ledger is built
    clock.at(minutes=30)
    _ok(c.post("/api/v1/vms/web/stop", headers=acme))
    clock.at(hours=1)
    _ok(c.post("/api/v1/vms/web/start", headers=acme))
    with journal.acting_as(journal.NODE_ACTOR):
        assert compact(0, 365, before=appliance.metering.write_rollup).deleted > 0
    clock.at(hours=2)
    vcpu = _lines(_ok(c.get("/api/v1/usage", headers=admin, params=period)))[("acme", "vcpu")]
    assert vcpu == 2 * 1.5  # 30 minutes, then the second hour


def test_a_process_that_claims_another_profile_holds_one_slice(api: Api, clock: Clock) -> None:
    """The claim moves the process to the new slice with no release in the journal: it
    is charged for the one it holds, not for both."""
    c, admin, acme = api
    # The quota counts the slice being given up too: room for both.
    quotas = {"process_claims": 2, "gpu_slices": {"1g.10gb": 1, "2g.20gb": 1}}
    quotas["gpu_compute_slices"] = 3
    _ok(c.put("/api/v1/tenants/acme/quotas", headers=admin, json=quotas))
    gpu = c.get("/api/v1/gpus", headers=admin).json()["gpus"][0]["uuid"]
    layout = {"counts": {"1g.10gb": 2, "2g.20gb": 1}}
    _ok(c.post(f"/api/v1/gpus/{gpu}/apply", headers=admin, json=layout))
    claim = {"name": "train", "profile": "1g.10gb"}
    _ok(c.post("/api/v1/gpus/claims", headers=acme, json=claim), 201)
    clock.at(minutes=15)
    _ok(c.post("/api/v1/gpus/claims", headers=acme, json={**claim, "profile": "2g.20gb"}), 201)
    assert [x["profile"] for x in _ok(c.get("/api/v1/gpus/claims", headers=acme))] == ["2g.20gb"]
    clock.at(minutes=45)
    assert c.delete("/api/v1/gpus/claims/train", headers=acme).status_code == 204
    clock.at(hours=1)
    period = {"from": clock.iso(), "to": clock.iso(hours=1)}
    found = _lines(_ok(c.get("/api/v1/usage", headers=admin, params=period)))
    assert (found[("acme", "mig:1g.10gb")], found[("acme", "mig:2g.20gb")]) == (0.25, 0.5)


def test_a_tenant_reads_only_its_own_usage(api: Api, clock: Clock) -> None:
    c, _, acme = api
    _scenario(c, acme, clock)
    period = {"from": clock.iso(), "to": clock.iso(hours=2)}
    mine = _ok(c.get("/api/v1/usage", headers=acme, params=period))
    assert mine["tenant"] == "acme"
    assert {x["tenant"] for x in mine["lines"]} == {"acme"}
    beta = login(c, "beta-admin", PASSWORD)
    theirs = _ok(c.get("/api/v1/usage", headers=beta, params=period))
    assert _lines(theirs) == {("beta", "vnet"): 2.0}
    snoop = c.get("/api/v1/usage", headers=beta, params={**period, "tenant": "acme"})
    assert (snoop.status_code, snoop.json()["code"]) == (404, "tenant_not_found")
    csv = c.get("/api/v1/usage.csv", headers=acme, params=period)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.strip().splitlines()
    assert rows[0] == "tenant,resource,unit,period,quantity,seconds,cost,currency"
    assert "acme,vcpu,vCPU-hour,,3.0,10800.0,," in rows


def _usage_counters(c: TestClient[Any], headers: dict[str, str]) -> dict[tuple[str, ...], float]:
    text = _text(c.get("/metrics", headers=headers))
    family = next(
        f for f in text_string_to_metric_families(text) if f.name == "towerbox_usage_seconds"
    )
    assert family.type == "counter" and "vCPU-seconds" in family.documentation
    return {
        (s.labels["tenant"], s.labels["resource"], s.labels["profile"]): s.value
        for s in family.samples
        if s.name == "towerbox_usage_seconds_total"
    }


def _text(resp: Any) -> str:
    assert resp.status_code == 200, resp.text
    return str(resp.text)


def test_metrics_count_unit_seconds_per_tenant_and_resource(api: Api, clock: Clock) -> None:
    c, admin, acme = api
    _scenario(c, acme, clock)  # now +2 h, the VM running again since +1.5 h
    seen = _usage_counters(c, admin)
    assert seen[("acme", "vcpu", "")] == pytest.approx(2 * 1.5 * 3600)
    assert seen[("acme", "memory", "")] == pytest.approx(0.5 * 1.5 * 3600)
    assert seen[("acme", "mig", "1g.10gb")] == pytest.approx(1800)
    assert seen[("beta", "vnet", "")] > 2 * 3600  # declared before t0
    # The running VM's open interval keeps counting; the released slice does not.
    clock.at(hours=3)
    later = _usage_counters(c, admin)
    assert later[("acme", "vcpu", "")] == pytest.approx(2 * 2.5 * 3600)
    assert later[("acme", "mig", "1g.10gb")] == pytest.approx(1800)
    assert later[("beta", "vnet", "")] == pytest.approx(seen[("beta", "vnet", "")] + 3600)
    # Node-wide, like the other metrics: a tenant's admin gets none of it.
    assert c.get("/metrics", headers=acme).status_code == 403


def test_rates_are_versioned_and_never_rewrite_the_past(api: Api, clock: Clock) -> None:
    c, admin, acme = api
    first = {
        "effective_from": clock.iso(),
        "currency": "EUR",
        "rates": {"vcpu": 0.10, "memory_gib": 0.01, "mig:1g.10gb": 2.0, "vnet": 0.5},
        "tenant_rates": {"acme": {"vcpu": 0.05}},
    }
    _ok(c.post("/api/v1/prices", headers=admin, json=first), 201)
    # From +1 h the vCPU costs 0.20 for everyone (no override in this version), set
    # while that hour is still ahead.
    second = {
        **first,
        "effective_from": clock.iso(hours=1),
        "rates": {**first["rates"], "vcpu": 0.20},
        "tenant_rates": {},
    }
    _ok(c.post("/api/v1/prices", headers=admin, json=second), 201)
    _scenario(c, acme, clock)
    period = {"from": clock.iso(), "to": clock.iso(hours=2), "tenant": "acme"}
    report = _ok(c.get("/api/v1/usage", headers=admin, params=period))
    cost = {x["resource"]: x["cost"] for x in report["lines"]}
    # vCPU: hour 1: 2 vCPU-h x 0.05; hour 2: 1 vCPU-h x 0.20.
    assert cost["vcpu"] == pytest.approx(2 * 0.05 + 1 * 0.20)
    assert cost["mig:1g.10gb"] == pytest.approx(0.5 * 2.0)
    assert cost["memory_gib"] == pytest.approx(0.75 * 0.01)
    assert report["currency"] == "EUR"
    assert report["total_cost"] == pytest.approx(sum(cost.values()))
    # Periods billed stay billed: a version from an hour gone by is refused, even one
    # after the newest version's start.
    for hour in (0, 1):
        late = {**second, "effective_from": clock.iso(hours=hour)}
        assert _ok_error(c.post("/api/v1/prices", headers=admin, json=late)) == (
            422,
            "price_book_in_past",
        )
    assert len(_ok(c.get("/api/v1/prices", headers=admin))["versions"]) == 2
    upcoming = {**second, "effective_from": clock.iso(hours=3)}
    _ok(c.post("/api/v1/prices", headers=admin, json=upcoming), 201)


def test_a_version_not_yet_in_effect_can_be_withdrawn(api: Api, clock: Clock) -> None:
    c, admin, acme = api
    now = {"effective_from": clock.iso(), "currency": "EUR", "rates": {"vcpu": 0.1}}
    later = {**now, "effective_from": clock.iso(hours=2), "rates": {"vcpu": 0.3}}
    for book in (now, later):
        _ok(c.post("/api/v1/prices", headers=admin, json=book), 201)

    def withdraw(effective_from: str, headers: dict[str, str] = admin) -> Any:
        return c.delete(f"/api/v1/prices/{quote(effective_from, safe='')}", headers=headers)

    assert withdraw(later["effective_from"], acme).status_code == 403
    assert _ok_error(withdraw(now["effective_from"])) == (409, "price_book_in_effect")
    assert _ok_error(withdraw(clock.iso(hours=5))) == (404, "price_version_not_found")
    assert _ok_error(withdraw("soon")) == (422, "invalid_price_book")
    assert len(_ok(c.get("/api/v1/prices", headers=admin))["versions"]) == 2
    # The same time written in another zone names the same version.
    in_utc = clock.iso(hours=2).replace("+00:00", "Z")
    assert _ok(withdraw(in_utc)) == {"versions": [{**now, "tenant_rates": {}}]}
    # A report now rates every hour at the version left.
    _scenario(c, acme, clock)
    period = {"from": clock.iso(), "to": clock.iso(hours=3), "tenant": "acme"}
    cost = {
        x["resource"]: x["cost"]
        for x in _ok(c.get("/api/v1/usage", headers=admin, params=period))["lines"]
    }
    assert cost["vcpu"] == pytest.approx(3 * 0.1)


def test_the_time_a_node_was_down_is_not_billed(
    appliance: Appliance, api: Api, clock: Clock, tmp_path: Path
) -> None:
    """acme's VM runs from t0; the node's last sign of life is at +1 h; it starts again
    after a reboot at +3 h: the VM ran 1 h, not 3. The monitor then finds the VM running
    (autostarted) and it counts from +3 h."""
    c, admin, acme = api
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("the-first-boot\n")
    uptime = Uptime(Path(appliance.cfg.state_dir) / "alive", boot_id)
    assert not uptime.started()  # the first start knows no earlier boot
    body = {"name": "web", "appliance": "demo", "spec": {"role": "b2b", "vcpus": 2}}
    _ok(c.post("/api/v1/vms", headers=acme, json={**body, "start": True}), 201)
    clock.at(hours=1)
    appliance.uptime.beat()
    clock.at(hours=3)
    boot_id.write_text("a-new-boot\n")
    assert uptime.started()
    assert not uptime.started()  # the same boot: a daemon restart only
    entry = journal.entries(kind_prefix="node.started")[-1]
    assert entry["state"]["last_alive"] == clock.iso(hours=1)
    assert entry["state"]["stopped_vms"] == ["web"]
    assert Vm.get(Vm.name == "web").observed_state == "shutoff"
    period = {"from": clock.iso(), "to": clock.iso(hours=5), "tenant": "acme"}

    def vcpu_hours() -> float:
        lines = _ok(c.get("/api/v1/usage", headers=admin, params=period))["lines"]
        return sum(x["quantity"] for x in lines if x["resource"] == "vcpu")

    assert vcpu_hours() == 2 * 1.0
    appliance.monitor_job()  # the domain runs: journalled as running from +3 h
    clock.at(hours=4)
    assert vcpu_hours() == 2 * (1.0 + 1.0)


def test_a_forward_step_of_the_wall_clock_is_not_billed(api: Api) -> None:
    """The daemon's own clock: an hour's step forward is journalled, and the VM that
    ran across it is billed only for the time that passed."""
    c, admin, acme = api
    wall = [dt.datetime.now(dt.UTC).replace(microsecond=0) + 48 * HOUR]
    mono = [1000.0]
    previous = journal.set_clock(MonotonicClock(lambda: None, lambda: wall[0], lambda: mono[0]))
    try:
        start = wall[0]
        body = {"name": "web", "appliance": "demo", "spec": {"role": "b2b", "vcpus": 1}}
        _ok(c.post("/api/v1/vms", headers=acme, json={**body, "start": True}), 201)
        wall[0], mono[0] = start + 10 * dt.timedelta(minutes=1), 1600.0  # 10 min pass
        wall[0] += HOUR  # then NTP steps the wall clock an hour ahead
        assert journal.follow_clock_step()
        assert not journal.follow_clock_step()
        wall[0], mono[0] = wall[0] + 5 * dt.timedelta(minutes=1), 1900.0  # 5 more min
        hour = start.replace(minute=0, second=0)
        period = {"from": hour.isoformat(), "to": (hour + 4 * HOUR).isoformat()}
        lines = _ok(c.get("/api/v1/usage", headers=admin, params=period))["lines"]
        seconds = sum(x["seconds"] for x in lines if x["resource"] == "vcpu")
        assert seconds == pytest.approx(15 * 60, abs=1)
        stepped = journal.entries(kind_prefix="clock.stepped")[-1]["state"]
        assert dt.datetime.fromisoformat(stepped["to"]) - dt.datetime.fromisoformat(
            stepped["from"]
        ) == pytest.approx(HOUR, abs=dt.timedelta(seconds=1))
    finally:
        journal.set_clock(previous)


def _ok_error(resp: Any) -> tuple[int, str]:
    return resp.status_code, resp.json()["code"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"rates": {"vcpu": -1}}, "invalid_rate"),
        ({"rates": {"vcpu": 1e12}}, "invalid_rate"),
        ({"rates": {"mig:huge": 1}}, "unknown_resource"),
        ({"rates": {"cpu": 1}}, "unknown_resource"),
        ({"currency": "euro"}, "invalid_currency"),
        ({"effective_from": "2030-01-01T00:30:00+00:00"}, "invalid_price_book"),
        ({"effective_from": "soon"}, "invalid_price_book"),
        ({"tenant_rates": {"nope": {"vcpu": 1}}}, "tenant_not_found"),
        ({"effective_from": "2020-01-01T00:00:00+00:00"}, "price_book_in_past"),
    ],
)
def test_bad_price_books_are_refused_and_change_nothing(
    api: Api, change: dict[str, Any], code: str
) -> None:
    c, admin, acme = api
    book = {
        "effective_from": "2030-01-01T00:00:00+00:00",
        "currency": "EUR",
        "rates": {"vcpu": 1},
        **change,
    }
    resp = c.post("/api/v1/prices", headers=admin, json=book)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.json()["code"] == code
    assert _ok(c.get("/api/v1/prices", headers=admin)) == {"versions": []}
    assert c.post("/api/v1/prices", headers=acme, json={**book, **change}).status_code == 403


def test_a_second_currency_is_refused(api: Api) -> None:
    c, admin, _ = api
    book = {"effective_from": "2030-01-01T00:00:00+00:00", "currency": "EUR", "rates": {"vcpu": 1}}
    _ok(c.post("/api/v1/prices", headers=admin, json=book), 201)
    usd = {**book, "effective_from": "2030-02-01T00:00:00+00:00", "currency": "USD"}
    assert _ok_error(c.post("/api/v1/prices", headers=admin, json=usd)) == (
        422,
        "currency_mismatch",
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "invalid_period"),
        ({"from": "2030-01-01T00:10:00Z"}, "invalid_period"),
        ({"from": "yesterday"}, "invalid_period"),
        ({"tenant": "nope"}, "tenant_not_found"),
    ],
)
def test_bad_periods_and_tenants_are_refused(api: Api, params: dict[str, str], code: str) -> None:
    c, admin, _ = api
    resp = c.get("/api/v1/usage", headers=admin, params=params)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.json()["code"] == code
