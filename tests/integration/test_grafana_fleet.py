"""The shipped fleet dashboards (grafana/fleet*.json) query what a registry serves.

Each dashboard is a Grafana JSON model whose datasource is a template variable; every
panel's queries are valid PromQL (promtool parses them as recording rules) and name
only metrics that a populated registry's /metrics serves, and every registry family
has a panel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from registry.context import build_registry
from tests.registry.fleetapi import Api, api_for, make_config, vm_entries

DASHBOARDS = sorted((Path(__file__).parents[2] / "grafana").glob("fleet*.json"))
METRIC = re.compile(r"\btowerbox_[a-z0-9_]+")


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p["targets"]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    """Sample names and family names of a registry that has seen a little of everything."""
    registry = build_registry(make_config(tmp_path_factory.mktemp("fleet")))
    try:
        for api in api_for(registry):
            return _populate_and_scrape(api)
    finally:
        registry.db.close()
    raise AssertionError("no client")


def _populate_and_scrape(api: Api) -> tuple[set[str], set[str]]:
    client, admin = api.client, api.admin
    api.create_site("pending")
    site = api.enroll("s1")
    assert api.post_batch(site, vm_entries(1, 20)).status_code == 200
    beat = {"agent_version": "1", "appliance_head": 25, "queued": 5}
    assert client.post("/api/v1/sync/heartbeat", json=beat, headers=site).status_code == 200
    assert api.post_batch(site, vm_entries(40, 2)).status_code == 409  # a gap: refused
    assert client.put("/api/v1/sites/s1/desired/vnets", json={}, headers=admin).status_code == 200
    conflict = {
        "seq": 21,
        "kind": "desired.conflict",
        "object_type": "desired",
        "object_id": "vnets",
        "state": {"version": 1, "etag": "e", "result": "conflict", "reason": "local"},
    }
    assert api.post_batch(site, [conflict]).status_code == 200
    resp = client.get("/metrics", headers=admin)
    assert resp.status_code == 200, resp.text
    families = list(text_string_to_metric_families(resp.text))
    samples = {s.name for f in families for s in f.samples}
    return samples, {f.name for f in families}


def test_there_is_a_fleet_dashboard() -> None:
    assert [d.name for d in DASHBOARDS] == ["fleet.json"] or len(DASHBOARDS) > 1


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_a_grafana_model_on_a_datasource_variable(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_is_promql(path: Path, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required under CI (Debian's prometheus package)")
        pytest.skip("no promtool (apt-get install prometheus)")
    exprs = _exprs(json.loads(path.read_text()))
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(json.dumps(rules))  # JSON is YAML
    done = subprocess.run(
        [promtool, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(exprs)} rules found" in done.stdout, done.stdout


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_queries_what_the_registry_serves(
    path: Path, served: tuple[set[str], set[str]]
) -> None:
    samples, families = served
    dashboard = json.loads(path.read_text())
    queried: set[str] = set()
    for panel in _panels(dashboard):
        names = {m for t in panel["targets"] for m in METRIC.findall(t["expr"])}
        assert names, f"{panel['title']}: its queries name no towerbox metric"
        missing = names - samples
        assert not missing, f"{panel['title']}: the registry serves no {sorted(missing)}"
        queried |= names
    if path.name == "fleet.json":
        # The main dashboard shows every registry family (histograms by their series;
        # prometheus_client's *_created start times are no figure of the fleet).
        shown = {
            f for f in families if f.startswith("towerbox_registry_") and not f.endswith("_created")
        }
        unshown = {f for f in shown if not any(q.startswith(f) for q in queried)}
        assert not unshown, f"families with no panel: {sorted(unshown)}"
