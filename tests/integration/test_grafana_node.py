"""The node's Grafana dashboards (grafana/node*.json) against a populated node: each
is a Grafana dashboard with its data source a template variable, and every metric a
panel or a template variable queries is one the node's /metrics serves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.appliance import REPO
from tests.support.populated import Node, populated_node, scrape

DASHBOARDS = sorted((REPO / "grafana").glob("node*.json"))

# What PromQL writes that is not a metric: functions, aggregations and their
# modifiers, binary operators and modifiers.
_KEYWORDS = frozenset(
    [
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    ]
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _NAME.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in _KEYWORDS:
            continue  # a function or an aggregation
        if text[max(match.start() - 1, 0)] == "$":
            continue  # a Grafana variable ($__rate_interval)
        names.add(match.group())
    return names


def test_names_are_read_from_promql() -> None:
    expr = (
        'sum by (state) (rate(towerbox_vm_cpu_seconds_total{vm=~"$vm",x="a{b}"}'
        "[$__rate_interval])) / on (gpu) group_left towerbox_gpu_info"
    )
    assert metric_names(expr) == {"towerbox_vm_cpu_seconds_total", "towerbox_gpu_info"}


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable, rows' panels too."""
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop()
        panels += panel.get("panels", [])
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            # label_values(metric, label): the metric is what must be served.
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            yield f"variable {var['name']!r}", inner.group(1) if inner else query


@pytest.fixture(scope="module")
def dashboards() -> list[tuple[Path, dict[str, Any]]]:
    assert DASHBOARDS, "no grafana/node*.json"
    return [(path, json.loads(path.read_text())) for path in DASHBOARDS]


def test_dashboards_are_grafana_models_on_a_datasource_variable(
    dashboards: list[tuple[Path, dict[str, Any]]],
) -> None:
    uids = [d["uid"] for _, d in dashboards]
    assert len(set(uids)) == len(uids), "two dashboards share a uid"
    for path, dashboard in dashboards:
        assert dashboard["title"] and dashboard["schemaVersion"] >= 36, path
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        source = variables["datasource"]
        assert (source["type"], source["query"]) == ("datasource", "prometheus"), path
        ids = set()
        for panel in dashboard["panels"]:
            assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), (path, panel["title"])
            assert panel["id"] not in ids, (path, panel["title"])
            ids.add(panel["id"])
            if panel["type"] == "row":
                continue
            # Never a data source fixed to one Grafana's uid: the variable.
            assert panel["datasource"]["uid"] == "${datasource}", (path, panel["title"])
            assert panel["targets"], (path, panel["title"])
            for target in panel["targets"]:
                assert target.get("datasource", panel["datasource"]) == panel["datasource"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from populated_node(tmp_path)


def test_every_queried_metric_is_served_by_a_populated_node(
    node: Node, dashboards: list[tuple[Path, dict[str, Any]]]
) -> None:
    served = set(scrape(node.c, node.admin))
    for path, dashboard in dashboards:
        for where, expr in _queries(dashboard):
            names = metric_names(expr)
            assert names, f"{path.name} {where}: no metric in {expr!r}"
            missing = names - served
            assert not missing, f"{path.name} {where}: {sorted(missing)} not served"
