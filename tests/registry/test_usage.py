"""Fleet usage on the registry: each site's journal folded with the node's code, the
same figures with or without a rollup in place of compacted entries; the registry's
price book; who may read and write, and what bad input gets."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import pytest

from tests.registry.fleetapi import Api
from tests.support.daemon import TOWERBOX
from towerbox_core.metering.fold import parse_time_us
from towerbox_core.metering.ledger import Ledger, next_rollup
from towerbox_core.metering.prices import PriceBook
from towerbox_core.metering.report import report

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
PERIOD = {"from": "2030-01-01T00:00:00+00:00", "to": "2030-01-01T04:00:00+00:00"}
BOOK = {"effective_from": "2030-01-01T00:00:00+00:00", "currency": "EUR", "rates": {"vcpu": 0.5}}


def _at(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat()


def _journal() -> list[dict[str, Any]]:
    """acme's VM: created and running at t0, stopped at +1 h, started at +2 h, and a
    process claim of a slice from +30 to +90 min; an unrelated entry at +3 h."""
    spec = {"name": "web", "tenant": "acme", "vcpus": 2, "memory_mib": 1024}
    rows: list[tuple[str, str, str, Any, float]] = [
        ("vm.created", "vm", "vm-1", {"spec": spec, "disk_gib": 10}, 0),
        ("vm.state", "vm", "vm-1", {"name": "web", "state": "running"}, 0),
        (
            "gpu.instance_bound",
            "gpu",
            "GPU-0",
            {"start": 0, "profile": "1g.10gb", "owner": "process:acme/vllm"},
            30,
        ),
        ("vm.state", "vm", "vm-1", {"name": "web", "state": "shutoff"}, 60),
        ("gpu.instance_released", "gpu", "GPU-0", {"owner": "process:acme/vllm"}, 90),
        ("vm.state", "vm", "vm-1", {"name": "web", "state": "running"}, 120),
        ("tenant.updated", "tenant", "acme", {"name": "acme"}, 180),
    ]
    return [
        {
            "seq": seq,
            "kind": kind,
            "object_type": otype,
            "object_id": oid,
            "state": state,
            "created_at": _at(minutes),
        }
        for seq, (kind, otype, oid, state, minutes) in enumerate(rows, start=1)
    ]


def _quantities(body: dict[str, Any]) -> dict[tuple[str, str | None, str], float]:
    return {(x["site"], x["tenant"], x["resource"]): x["quantity"] for x in body["lines"]}


def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def test_a_sites_usage_is_its_journal_folded(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("edge-1")
    _ok(sqlite_api.post_batch(site, _journal()))
    c, admin = sqlite_api.client, sqlite_api.admin
    body = _ok(c.get("/api/v1/usage", headers=admin, params=PERIOD))
    # The VM runs again from +2 h: open, it counts up to the newest entry (+3 h).
    assert _quantities(body) == {
        ("edge-1", "acme", "vcpu"): 2 * (1 + 1),
        ("edge-1", "acme", "memory_gib"): 1 * (1 + 1),
        ("edge-1", "acme", "disk_gib"): 10 * 3,
        ("edge-1", "acme", "mig:1g.10gb"): 1.0,
    }
    assert body["sites"] == [{"site": "edge-1", "acked_seq": 7, "as_of": _at(180)}]
    assert (body["currency"], body["total_cost"]) == (None, None)

    # The same as the node's code on the same entries, up to the same time.
    ledger = Ledger()
    ledger.feed_all(
        (e["seq"], e["kind"], e["object_id"], e["state"], e["created_at"]) for e in _journal()
    )
    start, end = (parse_time_us(PERIOD[k]) or 0 for k in ("from", "to"))
    node = report(ledger.buckets(start, end, parse_time_us(_at(180)) or 0), "hour", [])
    hourly = _ok(c.get("/api/v1/usage", headers=admin, params={**PERIOD, "group_by": "hour"}))
    assert [{k: v for k, v in x.items() if k != "site"} for x in hourly["lines"]] == [
        msgspec.to_builtins(x) for x in node
    ]

    # A tenant, a site, a CSV; "" is the node's own (nothing here).
    own = _ok(c.get("/api/v1/usage", headers=admin, params={**PERIOD, "tenant": ""}))
    assert own["lines"] == []
    one = _ok(c.get("/api/v1/usage", headers=admin, params={**PERIOD, "site": "edge-1"}))
    assert _quantities(one) == _quantities(body)
    csv = c.get("/api/v1/usage.csv", headers=admin, params=PERIOD)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.strip().splitlines()
    assert rows[0] == "site,tenant,resource,unit,period,quantity,seconds,cost,currency"
    assert "edge-1,acme,vcpu,vCPU-hour,,4.0,14400.0,," in rows


def test_a_rollup_stands_for_entries_compacted_before_they_were_shipped(api: Api) -> None:
    """On both engines: the hand-written statements of the usage service included."""
    sqlite_api = api
    journal = _journal()
    whole = sqlite_api.enroll("whole")
    _ok(sqlite_api.post_batch(whole, journal))
    # The other node compacted seq 1-4 before shipping: a rollup (seq 8) says what they
    # proved; the registry never holds them.
    entries = [(e["seq"], e["kind"], e["object_id"], e["state"], e["created_at"]) for e in journal]
    rollup = next_rollup(None, entries, 4)
    compacted = sqlite_api.enroll("compacted")
    shipped = [
        *journal[4:],
        {
            "seq": 8,
            "kind": "usage.rollup",
            "object_type": "usage",
            "object_id": "4",
            "state": msgspec.to_builtins(rollup),
            "created_at": _at(181),
        },
    ]
    _ok(sqlite_api.post_batch(compacted, shipped, compacted_through=4))
    c, admin = sqlite_api.client, sqlite_api.admin
    # Up to +3 h, where both have entries: the same figures per period.
    period = {**PERIOD, "to": "2030-01-01T03:00:00+00:00", "group_by": "hour"}
    body = _ok(c.get("/api/v1/usage", headers=admin, params=period))
    by_site: dict[str, list[dict[str, Any]]] = {"whole": [], "compacted": []}
    for line in body["lines"]:
        by_site[line.pop("site")].append(line)
    assert by_site["whole"] and by_site["whole"] == by_site["compacted"]
    # A report folds only what arrived since the last one; a new entry moves it on.
    more = {**journal[-1], "seq": 9, "kind": "vm.state", "created_at": _at(200)}
    more["state"] = {"name": "web", "state": "shutoff"}
    _ok(sqlite_api.post_batch(compacted, [more]))
    later = _ok(c.get("/api/v1/usage", headers=admin, params={**PERIOD, "site": "compacted"}))
    assert _quantities(later)[("compacted", "acme", "vcpu")] == pytest.approx(2 * (1 + 80 / 60))


def test_the_registrys_price_book_rates_the_fleet(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("edge-1")
    _ok(sqlite_api.post_batch(site, _journal()))
    c, admin = sqlite_api.client, sqlite_api.admin
    assert _ok(c.get("/api/v1/prices", headers=admin)) == {"versions": []}
    book = {**BOOK, "tenant_rates": {"acme": {"mig:1g.10gb": 3.0}}}
    assert _ok(c.post("/api/v1/prices", headers=admin, json=book), 201)["versions"][0] == {
        **book,
        "rates": BOOK["rates"],
    }
    body = _ok(c.get("/api/v1/usage", headers=admin, params=PERIOD))
    cost = {x["resource"]: x["cost"] for x in body["lines"]}
    assert cost["vcpu"] == pytest.approx(4 * 0.5)
    assert cost["mig:1g.10gb"] == pytest.approx(3.0)
    assert (body["currency"], body["total_cost"]) == ("EUR", pytest.approx(5.0))
    past = c.post("/api/v1/prices", headers=admin, json=BOOK)
    assert (past.status_code, past.json()["code"]) == (422, "price_book_in_past")


@pytest.mark.parametrize("group_by", ["hour", "day", "total"])
def test_a_report_asked_again_after_new_entries_is_the_whole_journal_folded(
    sqlite_api: Api, group_by: str
) -> None:
    """The registry adds what new entries close to the sums it kept for a question;
    the node sums hour buckets: the same lines, costs to the last digit, with a price
    change half-way."""
    c, admin = sqlite_api.client, sqlite_api.admin
    books = [BOOK, {**BOOK, "effective_from": _at(120), "rates": {"vcpu": 0.7, "disk_gib": 0.01}}]
    for book in books:
        _ok(c.post("/api/v1/prices", headers=admin, json=book), 201)
    site = sqlite_api.enroll("edge-1")
    journal = _journal()
    params = {**PERIOD, "group_by": group_by}
    _ok(sqlite_api.post_batch(site, journal[:3]))
    _ok(c.get("/api/v1/usage", headers=admin, params=params))  # the question kept
    _ok(sqlite_api.post_batch(site, journal[3:]))
    body = _ok(c.get("/api/v1/usage", headers=admin, params=params))

    ledger = Ledger()
    ledger.feed_all(
        (e["seq"], e["kind"], e["object_id"], e["state"], e["created_at"]) for e in journal
    )
    start, end = (parse_time_us(PERIOD[k]) or 0 for k in ("from", "to"))
    priced = [msgspec.convert(b, PriceBook) for b in books]
    node = report(ledger.buckets(start, end, parse_time_us(_at(180)) or 0), group_by, priced)
    assert [{k: v for k, v in x.items() if k != "site"} for x in body["lines"]] == [
        msgspec.to_builtins(x) for x in node
    ]
    assert any(x["cost"] for x in body["lines"])


def test_a_version_not_yet_in_effect_can_be_withdrawn(sqlite_api: Api) -> None:
    c, admin = sqlite_api.client, sqlite_api.admin
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    now = {"effective_from": hour.isoformat(), "currency": "EUR", "rates": {"vcpu": 0.1}}
    later = {**now, "effective_from": (hour + dt.timedelta(hours=2)).isoformat()}
    for book in (now, later):
        _ok(c.post("/api/v1/prices", headers=admin, json=book), 201)

    def withdraw(effective_from: str, headers: dict[str, str] = admin) -> Any:
        return c.delete(f"/api/v1/prices/{quote(effective_from, safe='')}", headers=headers)

    refused = withdraw(later["effective_from"], _viewer(sqlite_api))
    assert (refused.status_code, refused.json()["code"]) == (403, "admin_required")
    for name, status, code in [
        (now["effective_from"], 409, "price_book_in_effect"),
        ((hour + dt.timedelta(hours=5)).isoformat(), 404, "price_version_not_found"),
        ("soon", 422, "invalid_price_book"),
    ]:
        resp = withdraw(name)
        assert (resp.status_code, resp.json()["code"]) == (status, code)
    assert _ok(withdraw(later["effective_from"])) == {"versions": [{**now, "tenant_rates": {}}]}
    assert len(_ok(c.get("/api/v1/prices", headers=admin))["versions"]) == 1


def _viewer(api: Api) -> dict[str, str]:
    user = {"username": "eve", "password": "correct horse battery", "role": "viewer"}
    _ok(api.client.post("/api/v1/operators", json=user, headers=api.admin), 201)
    login = api.client.post(
        "/api/v1/auth/login", json={"username": user["username"], "password": user["password"]}
    )
    return {"Authorization": f"Bearer {_ok(login, 201)['token']}"}


def test_who_may_read_and_write(sqlite_api: Api) -> None:
    c = sqlite_api.client
    site = sqlite_api.enroll("edge-1")
    viewer = _viewer(sqlite_api)
    assert c.get("/api/v1/usage", headers=viewer).status_code == 200
    assert c.get("/api/v1/usage.csv", headers=viewer).status_code == 200
    assert c.get("/api/v1/prices", headers=viewer).status_code == 200
    refused = c.post("/api/v1/prices", headers=viewer, json=BOOK)
    assert (refused.status_code, refused.json()["code"]) == (403, "admin_required")
    assert c.get("/api/v1/usage").status_code == 401
    secret = c.get("/api/v1/usage", headers=site)
    assert (secret.status_code, secret.json()["code"]) == (401, "operator_token_required")
    assert c.post("/api/v1/prices", headers=site, json=BOOK).status_code == 401
    assert _ok(c.get("/api/v1/prices", headers=viewer)) == {"versions": []}


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, 422, "invalid_period"),
        ({"from": "2030-01-01T00:10:00Z"}, 422, "invalid_period"),
        ({"to": "tomorrow"}, 422, "invalid_period"),
        ({"site": "nowhere"}, 404, "site_not_found"),
        ({"group_by": "week"}, 422, "invalid_group_by"),
    ],
)
def test_bad_reports_are_refused(
    sqlite_api: Api, params: dict[str, str], status: int, code: str
) -> None:
    for path in ("/api/v1/usage", "/api/v1/usage.csv"):
        resp = sqlite_api.client.get(path, headers=sqlite_api.admin, params=params)
        assert (resp.status_code, resp.json()["code"]) == (status, code)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"rates": {"vcpu": -1}}, "invalid_rate"),
        ({"rates": {"cpu": 1}}, "unknown_resource"),
        ({"currency": "euro"}, "invalid_currency"),
        ({"effective_from": "2030-01-01T00:30:00+00:00"}, "invalid_price_book"),
        ({"effective_from": "2020-01-01T00:00:00+00:00"}, "price_book_in_past"),
        ({"tenant_rates": {"bad name!": {"vcpu": 1}}}, "invalid_name"),
    ],
)
def test_bad_price_books_are_refused_and_change_nothing(
    sqlite_api: Api, change: dict[str, Any], code: str
) -> None:
    c, admin = sqlite_api.client, sqlite_api.admin
    resp = c.post("/api/v1/prices", headers=admin, json={**BOOK, **change})
    assert (resp.status_code, resp.json()["code"]) == (422, code)
    unknown = c.post("/api/v1/prices", headers=admin, json={**BOOK, "colour": "red"})
    assert unknown.status_code == 400
    assert _ok(c.get("/api/v1/prices", headers=admin)) == {"versions": []}


def test_the_cli_reads_the_same_report(sqlite_api: Api, tmp_path: Path) -> None:
    site = sqlite_api.enroll("edge-1")
    _ok(sqlite_api.post_batch(site, _journal()))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")},
        "TOWERBOX_REGISTRY_CONFIG": str(tmp_path / "absent.toml"),
        "TOWERBOX_REGISTRY_STATE_DIR": str(sqlite_api.registry.cfg.state_dir),
    }
    period = ["--from", PERIOD["from"], "--to", PERIOD["to"]]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TOWERBOX, "registry", "usage", *period, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    csv = cli("--csv", "--site", "edge-1")
    assert csv.returncode == 0, csv.stderr
    api = sqlite_api.client.get("/api/v1/usage.csv", headers=sqlite_api.admin, params=PERIOD)
    assert csv.stdout == api.text
    shown = cli("--group-by", "day")
    assert shown.returncode == 0 and "edge-1  acme" in shown.stdout, shown.stdout
    assert json.loads(cli("--json").stdout)["sites"][0]["as_of"] == _at(180)
    missing = cli("--site", "nowhere")
    assert missing.returncode != 0 and "site_not_found" in missing.stderr
