"""The Prometheus rule file: shipped as rendered, valid for promtool, and meaning what
the node evaluates: the same readings, given to the node's rules and as metric series
to ``promtool test rules``, raise the same alerts on the same objects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.domain.alerts.promql import render_rules
from appliance.domain.alerts.readings import (
    HugepageReading,
    JobReading,
    NodeHealth,
    NodeReadings,
    VmReading,
)
from appliance.domain.alerts.rules import RULES, RULES_BY_ID, AlertBounds

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "grafana" / "towerbox-alerts.rules.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package prometheus)"
)

# A node in trouble: a stopped vRAN VM, no 1G hugepages left on NUMA node 0, 5 % of
# its state disk free and a GPU schedule whose last run failed.
GIB = 2**30
READINGS = NodeReadings(
    at=1_000_000.0,
    health=NodeHealth(
        hugepages=(HugepageReading(0, "1G", 0, 8), HugepageReading(1, "1G", 2, 8)),
        disk_free=5 * GIB,
        disk_size=100 * GIB,
        jobs=(
            JobReading("gpu-schedule:night", None, 999_000.0, False, "vran_protected"),
            JobReading("monitor", None, 999_990.0, True),
        ),
    ),
    vms=(
        VmReading("du", "u1", None, "vran", "shutoff", "running"),
        VmReading("llm", "u2", "acme", "b2b", "running", "running"),
    ),
)


# The WAN link down for 1000 s and the registry behind: journal backlog, age and WAN.
LINK_DOWN = NodeReadings(
    at=1_000_000.0,
    health=NodeHealth(
        journal_unacked=60_000,
        journal_oldest_unacked_age_s=4000.0,
        wan_up=False,
        wan_last_sync=1_000_000.0 - 1000,
        disk_free=50 * GIB,
        disk_size=100 * GIB,
    ),
)
# When promtool looks: past every rule's ``for``.
EVAL_S = 360


def _series(r: NodeReadings) -> list[dict[str, str]]:
    """The readings as the node's /metrics serves them, steady for 10 minutes; times
    as seen from ``EVAL_S`` into the test, as ``r.at`` sees them."""
    series: list[tuple[str, float]] = [
        (
            f'towerbox_vm_state{{vm="{vm.name}",tenant="{vm.tenant or "_node"}",'
            f'role="{vm.role}",state="{vm.state}"}}',
            1,
        )
        for vm in r.vms
    ]
    for p in r.health.hugepages:
        labels = f'{{size="{p.size}",numa_node="{p.numa_node}"}}'
        series += [(f"towerbox_hugepages_free{labels}", p.free)]
        series += [(f"towerbox_hugepages_total{labels}", p.total)]
    series += [
        ("towerbox_state_disk_free_bytes", r.health.disk_free or 0),
        ("towerbox_state_disk_size_bytes", r.health.disk_size or 0),
    ]
    series += [
        (f'towerbox_job_last_success{{job="{j.job}"}}', int(bool(j.last_success)))
        for j in r.health.jobs
    ]
    h = r.health
    series += [
        ("towerbox_journal_unacked_entries", h.journal_unacked),
        ("towerbox_journal_oldest_unacked_age_seconds", h.journal_oldest_unacked_age_s),
        ("towerbox_wan_up", int(h.wan_up)),
    ]
    if h.wan_last_sync is not None:
        series += [("towerbox_wan_last_sync_timestamp_seconds", EVAL_S - (r.at - h.wan_last_sync))]
    return [{"series": name, "values": f"{value:g}x40"} for name, value in series]


def test_the_shipped_rule_file_is_the_rendering() -> None:
    assert SHIPPED.read_text() == render_rules(), (
        "re-render it: towerbox alerts rules --prometheus > grafana/towerbox-alerts.rules.yml"
    )
    parsed = yaml.safe_load(SHIPPED.read_text())
    assert [r["alert"] for r in parsed["groups"][0]["rules"]] == [r.id for r in RULES]


@needs_promtool
def test_promtool_accepts_the_rule_file() -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(SHIPPED)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize(
    ("readings", "raised"),
    [
        (
            READINGS,
            {
                "vran_vm_down": {"vm:du"},
                "hugepages_exhausted": {"hugepages:node0:1G"},
                "disk_space_low": {"node"},
                "schedule_failed": {"job:gpu-schedule:night"},
            },
        ),
        (
            LINK_DOWN,
            {
                "journal_backlog": {"node"},
                "journal_oldest_unacked": {"node"},
                "wan_offline": {"node"},
            },
        ),
    ],
)
def test_prometheus_raises_what_the_node_raises(
    tmp_path: Path, readings: NodeReadings, raised: dict[str, set[str]]
) -> None:
    bounds = AlertBounds()
    node_side: dict[str, set[str]] = {}
    for rule in RULES:
        for finding in rule.check(readings, bounds):
            node_side.setdefault(rule.id, set()).add(finding.object)
    assert node_side == raised
    cases: list[dict[str, Any]] = []
    for rule in RULES:
        expected = []
        for obj in sorted(node_side.get(rule.id, ())):
            expected.append(
                {
                    "exp_labels": {
                        **_labels_of(readings, rule.id, obj),
                        "severity": rule.severity.value,
                        "object": obj,
                    },
                    "exp_annotations": {"summary": rule.summary, "runbook": rule.runbook},
                }
            )
        # A rule the node does not raise must not fire at all.
        cases.append({"eval_time": f"{EVAL_S}s", "alertname": rule.id, "exp_alerts": expected})
    spec = {
        "rule_files": [str(SHIPPED)],
        "evaluation_interval": "15s",
        "tests": [{"interval": "15s", "input_series": _series(readings), "alert_rule_test": cases}],
    }
    test_file = tmp_path / "node.test.yml"
    test_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(test_file)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _labels_of(readings: NodeReadings, rule_id: str, obj: str) -> dict[str, str]:
    """The series labels Prometheus keeps on the alert of ``rule_id`` on ``obj``."""
    kind, _, name = obj.partition(":")
    if rule_id == "vran_vm_down":
        vm = next(v for v in readings.vms if v.name == name)
        return {"vm": vm.name, "tenant": vm.tenant or "_node", "role": vm.role, "state": vm.state}
    if rule_id == "hugepages_exhausted":
        node, _, size = name.partition(":")
        return {"numa_node": node.removeprefix("node"), "size": size}
    if rule_id == "schedule_failed":
        return {"job": name}
    assert RULES_BY_ID[rule_id] and kind == "node"
    return {}
