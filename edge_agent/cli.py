"""``towerbox agent ...``: enroll, run, status, and a token for the agent (as root)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from towerbox_core.commands import CommandGroup, report
from towerbox_core.commands import out as _out
from towerbox_core.errors import TowerboxError, Unauthorized

if TYPE_CHECKING:
    from edge_agent.config import AgentConfig


def _register(agent: argparse.ArgumentParser) -> None:
    agent.add_argument("--agent-config", type=Path, help="default /etc/towerbox/agent.toml")
    sub = agent.add_subparsers(dest="agent_command", required=True)
    enroll = sub.add_parser("enroll", help="trade a one-time token for the site secret")
    enroll.add_argument("registry_url")
    enroll.add_argument("token")
    enroll.add_argument("--ca", default="", help="CA bundle the registry's TLS is checked against")
    sub.add_parser("run", help="run the agent (what its systemd unit does)")
    status = sub.add_parser("status", help="enrollment and the appliance's sync status")
    status.add_argument("--json", action="store_true")
    token = sub.add_parser("token", help="create a sync-agent token on the appliance (root)")
    token.add_argument(
        "--admin-token",
        type=Path,
        help="a file holding the node's root CLI token (default: $TOWERBOX_TOKEN, else the "
        "agent config's appliance_cli_token_file, /var/lib/towerbox/cli-token)",
    )
    token.add_argument("--out", type=Path, help="write it to this file, mode 0600")
    token.add_argument("--name", default="edge-agent")


def _handle(args: argparse.Namespace) -> int:
    from edge_agent.config import load_agent_config

    try:
        cfg = load_agent_config(args.agent_config)
        if args.agent_command == "enroll":
            from edge_agent.enroll import enroll

            done = enroll(cfg, args.registry_url, args.token, args.ca)
            _out(f"enrolled as site {done.site}; state in {cfg.state_file} (0600)")
            return 0
        if args.agent_command == "run":
            from edge_agent.runner import run_agent
            from towerbox_core.logsetup import setup_logging

            setup_logging(cfg.log_level)
            return run_agent(cfg)
        if args.agent_command == "token":
            return _token(args, cfg)
        return _status(args, cfg)
    except TowerboxError as err:
        return report(err)


def _root_token(named: Path | None, cfg: AgentConfig) -> str:
    """--admin-token's file, else $TOWERBOX_TOKEN, else the file the config names."""
    if named is None and (from_env := os.environ.get("TOWERBOX_TOKEN", "").strip()):
        return from_env
    path = named or Path(cfg.appliance_cli_token_file)
    try:
        token = path.read_text().strip()
    except OSError as err:
        raise Unauthorized(
            f"cannot read the node's CLI token {path}: {err.strerror}; run this as root on "
            "the node, or give --admin-token, $TOWERBOX_TOKEN or the agent config's "
            "appliance_cli_token_file",
            code="token_missing",
        ) from err
    if not token:
        raise Unauthorized(f"the node's CLI token file {path} is empty", code="token_missing")
    return token


def _token(args: argparse.Namespace, cfg: AgentConfig) -> int:
    from towerbox_core.secret_files import write_secret_file
    from towerbox_core.sync_client import ApiClient

    # Run as root on the node: the CLI token root holds makes the agent's token.
    url = args.url or cfg.appliance_url
    with ApiClient(url, token=_root_token(args.admin_token, cfg)) as client:
        answer = client.request("POST", "/api/v1/sync/agent-token", json={"name": args.name})
    if args.out:
        write_secret_file(args.out, answer["token"] + "\n")
        _out(f"sync-agent token written to {args.out} (0600); chown it to the agent's user")
    else:
        _out(answer["token"])
    return 0


def _status(args: argparse.Namespace, cfg: AgentConfig) -> int:
    from edge_agent.state import load_enrollment, read_token
    from towerbox_core.sync_client import ApiClient

    result: dict[str, Any] = {}
    enrollment = load_enrollment(cfg.state_file)
    result["site"] = enrollment.site
    result["registry_url"] = enrollment.registry_url
    try:
        token = read_token(Path(cfg.token_file))
        with ApiClient(cfg.appliance_url, token=token, timeout=10) as client:
            result["appliance"] = client.request("GET", "/api/v1/sync/status")
    except TowerboxError as err:
        result["appliance"] = {"error": err.message}
    if args.json:
        _out(json.dumps(result, indent=2))
        return 0
    sync = result["appliance"]
    _out(f"site:      {result['site']} ({result['registry_url']})")
    _out(f"agent:     {sync.get('agent', '?')}")
    _out(
        f"wan:       {sync.get('wan', '?')}"
        + (f" since {sync['offline_since']}" if sync.get("offline_since") else "")
    )
    positions = f"head {sync.get('head', '?')}, acked {sync.get('acked_seq', '?')}"
    _out(f"queued:    {sync.get('queued', '?')} ({positions})")
    _out(f"last sync: {sync.get('last_sync_at') or '-'}")
    return 0


group = CommandGroup(
    "agent", "the edge agent (registry sync)", _register, _handle, node_options=False
)
