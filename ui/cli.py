"""``towerbox ui``: run the web UI against the appliance API."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from towerbox_core.commands import CommandGroup

DEFAULT_STORAGE = "var/run/ui"


def _register(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--appliance-url",
        default=os.environ.get("TOWERBOX_UI_APPLIANCE_URL", "http://127.0.0.1:8443"),
        help="the appliance API on loopback (default http://127.0.0.1:8443)",
    )
    cmd.add_argument("--host", default=os.environ.get("TOWERBOX_UI_HOST", "127.0.0.1"))
    cmd.add_argument("--port", type=int, default=int(os.environ.get("TOWERBOX_UI_PORT", "8080")))
    cmd.add_argument(
        "--storage-dir",
        type=Path,
        # systemd's RuntimeDirectory= (tmpfs) on a node; var/run/ui in a checkout.
        default=Path(os.environ.get("RUNTIME_DIRECTORY", DEFAULT_STORAGE)),
        help="private folder for the session-to-token map (emptied at start)",
    )
    cmd.add_argument(
        "--secure-cookie",
        action="store_true",
        help="mark the session cookie Secure (when a TLS proxy fronts the UI)",
    )
    cmd.add_argument("--poll", type=float, default=1.0, help="live refresh interval, seconds")


def _handle(args: argparse.Namespace) -> int:
    from towerbox_core.logsetup import setup_logging

    # Files the UI writes (the session map holds tokens) are for its own user only.
    os.umask(0o077)
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(args.storage_dir))
    setup_logging("INFO")
    # One line per appliance request at INFO would drown the UI's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
