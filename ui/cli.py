"""``towerbox ui``: run the web UI against the appliance API."""

from __future__ import annotations

import argparse
import os

from towerbox_core import webui
from towerbox_core.commands import CommandGroup

DEFAULT_STORAGE = "var/run/ui"


def _register(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--appliance-url",
        default=os.environ.get("TOWERBOX_UI_APPLIANCE_URL", "http://127.0.0.1:8443"),
        help="the appliance API on loopback (default http://127.0.0.1:8443)",
    )
    webui.add_listen_options(cmd, "TOWERBOX_UI_", 8080, DEFAULT_STORAGE)
    cmd.add_argument("--poll", type=float, default=1.0, help="live refresh interval, seconds")


def _handle(args: argparse.Namespace) -> int:
    webui.prepare_process(args.storage_dir)
    from ui.app import serve
    from ui.settings import UiSettings

    settings = UiSettings(
        appliance_url=args.appliance_url,
        host=args.host,
        port=args.port,
        storage_dir=args.storage_dir,
        secure_cookie=args.secure_cookie,
        live_poll_s=args.poll,
    )
    serve(settings)
    return 0


group = CommandGroup("ui", "run the node web UI (NiceGUI)", _register, _handle, node_options=False)
