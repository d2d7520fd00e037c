"""The alert rules as a Prometheus rule file, for operators who run Prometheus.

Rendered by hand as YAML whose strings are JSON strings (valid YAML double-quoted
scalars): no YAML library on the node for one small file. ``grafana/towerbox-alerts.rules.yml``
is this rendering with the default bounds.
"""

from __future__ import annotations

import json

from appliance.domain.alerts.rules import RULES, AlertBounds, Rule

GROUP = "towerbox-node"


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _rule(rule: Rule, bounds: AlertBounds) -> list[str]:
    lines = [
        f"      - alert: {rule.id}",
        f"        expr: {json.dumps(rule.expr(bounds))}",
    ]
    if rule.holds_for(bounds) > 0:
        lines.append(f"        for: {_duration(rule.holds_for(bounds))}")
    lines += [
        "        labels:",
        f"          severity: {rule.severity.value}",
        f"          object: {json.dumps(rule.object_template)}",
        "        annotations:",
        f"          summary: {json.dumps(rule.summary)}",
        f"          runbook: {json.dumps(rule.runbook)}",
    ]
    return lines


def render_rules(bounds: AlertBounds | None = None) -> str:
    """The rule file for ``bounds`` (default: the shipped defaults)."""
    bounds = bounds or AlertBounds()
    lines = [
        "# Towerbox node alerts, rendered by `towerbox alerts rules --prometheus`: the same",
        "# rules the node evaluates itself, over the metrics its /metrics serves.",
        "groups:",
        f"  - name: {GROUP}",
        f"    interval: {_duration(bounds.interval_s)}",
        "    rules:",
    ]
    for rule in RULES:
        lines += _rule(rule, bounds)
    return "\n".join(lines) + "\n"
