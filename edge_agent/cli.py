"""``towerbox agent ...``: enroll, run, status, and a token for the agent (as root)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from appliance.errors import TowerboxError


def _out(text: str) -> None:
    # The command's answer goes to stdout; logs go to stderr.
    sys.stdout.write(text + "\n")


def register(subparsers: Any) -> None:
    agent = subparsers.add_parser("agent", help="the edge agent (registry sync)")
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
    token.add_argument("--out", type=Path, help="write it to this file, mode 0600")
    token.add_argument("--name", default="edge-agent")


def handle(args: argparse.Namespace) -> int:
    from edge_agent.config import load_agent_config

    try:
        cfg = load_agent_config(args.agent_config)
        if args.agent_command == "enroll":
            from edge_agent.enroll import enroll

            done = enroll(cfg, args.registry_url, args.token, args.ca)
            _out(f"enrolled as site {done.site}; state in {cfg.state_file} (0600)")
            return 0
        if args.agent_command == "run":
            from appliance.logsetup import setup_logging
            from edge_agent.runner import run_agent

            setup_logging(cfg.log_level)
            return run_agent(cfg)
        if args.agent_command == "token":
            return _token(args)
        return _status(args, cfg)
    except TowerboxError as err:
        sys.stderr.write(f"error [{err.code}]: {err.message}\n")
        return 1


def _token(args: argparse.Namespace) -> int:
    from appliance.client import ApplianceClient
    from appliance.config import load_config
    from appliance.services.auth import write_secret_file

    client = ApplianceClient(load_config(args.config), url=args.url)
    try:
        answer = client.request("POST", "/api/v1/sync/agent-token", json={"name": args.name})
    finally:
        client.close()
    if args.out:
        write_secret_file(args.out, answer["token"] + "\n")
        _out(f"sync-agent token written to {args.out} (0600); chown it to the agent's user")
    else:
        _out(answer["token"])
    return 0


def _status(args: argparse.Namespace, cfg: Any) -> int:
    import httpx

    from edge_agent.state import load_enrollment, read_token

    result: dict[str, Any] = {}
    enrollment = load_enrollment(cfg.state_file)
    result["site"] = enrollment.site
    result["registry_url"] = enrollment.registry_url
    url = cfg.appliance_url
    transport = (
        httpx.HTTPTransport(uds=url.removeprefix("unix:")) if url.startswith("unix:") else None
    )
    headers = {"Authorization": f"Bearer {read_token(Path(cfg.token_file))}"}
    base = "http://appliance" if transport else url
    try:
        with httpx.Client(transport=transport, base_url=base, headers=headers, timeout=10) as c:
            resp = c.get("/api/v1/sync/status")
            result["appliance"] = resp.json()
    except (httpx.HTTPError, ValueError) as err:
        result["appliance"] = {"error": str(err)}
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
