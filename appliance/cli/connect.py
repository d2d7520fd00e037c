"""How a node command reaches the appliance: its config, its token, one call."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from towerbox_core.commands import as_json, fail, out
from towerbox_core.errors import InvalidInput

if TYPE_CHECKING:
    from appliance.config import Config
    from towerbox_core.client import ApiClient

Call = Callable[["ApiClient"], Any]
Show = Callable[[argparse.Namespace, Any], None]


def find_token(cfg: Config) -> str | None:
    token = os.environ.get("TOWERBOX_TOKEN")
    if token:
        return token.strip()
    for path in (Path.home() / ".config" / "towerbox" / "token", Path(cfg.cli_token_file)):
        try:
            return path.read_text().strip()
        except OSError:
            continue
    return None


def api_url(cfg: Config, url: str | None) -> str:
    """``--url``, else the local unix socket when it exists, else TCP on loopback."""
    if url:
        return url
    if cfg.api.socket and Path(cfg.api.socket).exists():
        return f"unix:{cfg.api.socket}"
    return f"http://{cfg.api.host}:{cfg.api.port}"


def connect(cfg: Config, url: str | None) -> ApiClient:
    from towerbox_core.client import ApiClient

    return ApiClient(api_url(cfg, url), token=find_token(cfg))


def show_plain(args: argparse.Namespace, result: Any) -> None:
    """JSON for structures, text as it came, nothing for an empty answer."""
    if result is None:
        return
    if isinstance(result, str):
        sys.stdout.write(result)
        return
    out(as_json(result))


def node_call(args: argparse.Namespace, call: Call, show: Show = show_plain) -> int:
    """Run one API call against the appliance and print its answer; 1 on an error."""
    from appliance.config import load_config
    from towerbox_core.client import ApiError
    from towerbox_core.errors import TowerboxError

    try:
        with connect(load_config(args.config), args.url) as client:
            result = call(client)
    except ApiError as err:
        return fail(err.code, err.message, err.status)
    except TowerboxError as err:
        return fail(err.code, err.message)
    if getattr(args, "json", False):
        show_plain(args, result)
    else:
        show(args, result)
    return 0


def json_arg(text: str, what: str) -> Any:
    """A JSON argument from the command line; bad JSON is the caller's error, not a crash."""
    try:
        return json.loads(text)
    except ValueError as err:
        raise InvalidInput(f"{what} is not valid JSON: {err}", code="invalid_json") from err


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
