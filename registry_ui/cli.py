"""``towerbox registry-ui``: run the fleet registry's web UI against the registry API."""

from __future__ import annotations

import argparse
import os

from towerbox_core import webui
from towerbox_core.commands import CommandGroup

DEFAULT_STORAGE = "var/run/registry-ui"
ENV = "TOWERBOX_REGISTRY_UI_"


def _register(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--registry-url",
        default=os.environ.get(f"{ENV}REGISTRY_URL", "http://127.0.0.1:8600"),
        help="the registry API (default http://127.0.0.1:8600)",
    )
    webui.add_listen_options(cmd, ENV, 8081, DEFAULT_STORAGE)
    cmd.add_argument("--ca-file", default="", help="CA bundle for a registry on HTTPS")
    cmd.add_argument("--poll", type=float, default=5.0, help="refresh interval, seconds")


def _handle(args: argparse.Namespace) -> int:
    webui.prepare_process(args.storage_dir)
    from registry_ui.app import serve
    from registry_ui.settings import RegistryUiSettings

    options = {k: getattr(args, k) for k in ("registry_url", "host", "port", "ca_file")}
    serve(
        RegistryUiSettings(
            storage_dir=args.storage_dir,
            secure_cookie=args.secure_cookie,
            poll_s=args.poll,
            **options,
        )
    )
    return 0


group = CommandGroup(
    "registry-ui", "run the fleet registry web UI (NiceGUI)", _register, _handle, node_options=False
)
