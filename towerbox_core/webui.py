"""What the two web UIs (node and registry) share and NiceGUI does not need to know:
their command-line options, the process set-up, the session map's folder, the
cookie settings, the login redirect and the login failure wording."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from towerbox_core.sync_client import ApiError

# Browser sessions outlive no working day; the API token inside expires sooner anyway.
SESSION_MAX_AGE_S = 12 * 3600


def add_listen_options(
    cmd: argparse.ArgumentParser, env_prefix: str, port: int, storage: str
) -> None:
    """--host, --port, --storage-dir and --secure-cookie, each defaulting to the
    environment (``<env_prefix>HOST`` ...)."""
    cmd.add_argument("--host", default=os.environ.get(f"{env_prefix}HOST", "127.0.0.1"))
    cmd.add_argument("--port", type=int, default=int(os.environ.get(f"{env_prefix}PORT", port)))
    cmd.add_argument(
        "--storage-dir",
        type=Path,
        # systemd's RuntimeDirectory= (tmpfs) on a host; var/run/... in a checkout.
        default=Path(os.environ.get("RUNTIME_DIRECTORY", storage)),
        help="private folder for the session-to-token map (emptied at start)",
    )
    cmd.add_argument(
        "--secure-cookie",
        action="store_true",
        help="mark the session cookie Secure (when a TLS proxy fronts the UI)",
    )


def prepare_process(storage_dir: Path) -> None:
    """Before NiceGUI is imported: private files, its storage folder, quiet HTTP logs."""
    from towerbox_core.logsetup import setup_logging

    # Files the UI writes (the session map holds tokens) are for its own user only.
    os.umask(0o077)
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(storage_dir))
    setup_logging("INFO")
    # One line per API request at INFO would drown the UI's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def prepare_storage(directory: Path) -> None:
    """A private folder for the session map, emptied at start: the new secret orphans it."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    for stale in directory.glob("storage-*.json"):
        stale.unlink(missing_ok=True)


def run_options(title: str, storage_secret: str, secure_cookie: bool) -> dict[str, Any]:
    """ui.run's arguments: the session cookie is HttpOnly (Starlette) and SameSite=Strict."""
    return {
        "title": title,
        "storage_secret": storage_secret,
        "session_middleware_kwargs": {
            "same_site": "strict",
            "https_only": secure_cookie,
            "max_age": SESSION_MAX_AGE_S,
        },
        "show_welcome_message": False,
        "reload": False,
        "show": False,
        "favicon": "🗼",
    }


def safe_next(target: Any) -> str:
    """Only local paths after login: never an open redirect to another site."""
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def login_failure(err: ApiError, unreachable_code: str, service: str) -> str:
    """Why a login failed, for the login form; ``service``: "the appliance"..."""
    if err.code == unreachable_code or err.status == 0:
        return f"{service.capitalize()} does not answer, so nobody can log in right now: {err.text}"
    if err.status == 401:
        return f"Wrong username or password. [{err.code}]"
    return f"Login failed: {err.text}"
