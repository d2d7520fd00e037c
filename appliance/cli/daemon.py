"""``towerbox appliance``: run the daemon (what its systemd unit does)."""

from __future__ import annotations

import argparse

from towerbox_core.commands import CommandGroup, report


def _run(args: argparse.Namespace) -> int:
    from appliance.config_load import load_config
    from appliance.daemon import run_daemon
    from towerbox_core.errors import TowerboxError

    try:
        return run_daemon(load_config(args.config))
    except TowerboxError as err:
        return report(err)


group = CommandGroup("appliance", "run the appliance daemon", lambda _: None, _run)
