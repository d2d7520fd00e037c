"""``towerbox alerts``: the node's firing alerts, acknowledging one, and the rules as a
Prometheus rule file.

towerbox alerts                          # firing alerts you may see
towerbox alerts --all                    # and the recently resolved ones
towerbox alerts ack 12                   # acknowledge alert 12 (recorded with your name)
towerbox alerts rules --prometheus > /etc/prometheus/rules/towerbox.yml
"""

from __future__ import annotations

import argparse
from typing import Any

from appliance.cli.connect import config_path, json_flag, node_call, show_plain
from towerbox_core.commands import EXIT_OK, CommandGroup, out, report, table
from towerbox_core.errors import TowerboxError

_COLUMNS = ("id", "severity", "rule", "object", "since", "state", "acked_by", "message")


def _register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true", help="recently resolved alerts too")
    json_flag(parser)
    cmds = parser.add_subparsers(dest="alerts_command")
    ack = cmds.add_parser("ack", help="acknowledge a firing alert")
    ack.add_argument("alert_id", type=int, metavar="ID")
    json_flag(ack)
    rules = cmds.add_parser("rules", help="the alert rules, for Prometheus")
    rules.add_argument(
        "--prometheus",
        action="store_true",
        required=True,
        help="a Prometheus rule file, with this node's [alerts] bounds",
    )


def alert_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**a, "acked_by": a["acked_by"] or "-"} for a in result["alerts"]]


def _show_list(args: argparse.Namespace, result: Any) -> None:
    if not isinstance(result, dict) or "alerts" not in result:
        show_plain(args, result)
        return
    if not result["alerts"]:
        out("no alerts firing")
        return
    out(table(alert_rows(result), _COLUMNS))
    for alert in result["alerts"]:
        out(f"{alert['id']}: {alert['runbook']}")


def _rules(args: argparse.Namespace) -> int:
    from appliance.config_load import load_config
    from appliance.domain.alerts.promql import render_rules

    try:
        cfg = load_config(config_path(args))
    except TowerboxError as err:
        return report(err)
    out(render_rules(cfg.alerts).rstrip("\n"))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    if args.alerts_command == "rules":
        return _rules(args)
    if args.alerts_command == "ack":
        path = f"/api/v1/alerts/{args.alert_id}/ack"
        return node_call(args, lambda c: c.request("POST", path))
    params = {"all": "true"} if args.all else {}
    return node_call(args, lambda c: c.request("GET", "/api/v1/alerts", params=params), _show_list)


group = CommandGroup("alerts", "the node's alerts: list, acknowledge, rule file", _register, _run)
