"""How a node command reaches the appliance: its config, its token, one call.

Every failure on the way is one line with a code and the exit status of its row in
``towerbox_core.commands``: a config file that is not there, a token that is missing
or refused (saying where it was looked for), a daemon that does not answer (saying at
which URL or socket).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from towerbox_core.commands import EXIT_OK, as_json, human, out, report
from towerbox_core.errors import ConfigError, InvalidInput, TowerboxError

if TYPE_CHECKING:
    from appliance.config import Config
    from towerbox_core.sync_client import ApiClient

Call = Callable[["ApiClient"], Any]
Show = Callable[[argparse.Namespace, Any], None]

TOKEN_ENV = "TOWERBOX_TOKEN"  # noqa: S105 (the variable's name, not a secret)
USER_TOKEN_FILE = Path.home() / ".config" / "towerbox" / "token"
HOW_TO_GET_A_TOKEN = (
    "on the node, root's token is written by the appliance at its first start; "
    f"elsewhere sign in (POST /api/v1/auth/login) and put that token in ${TOKEN_ENV}, "
    f"(`towerbox token NAME` then makes an API token to keep in {USER_TOKEN_FILE})"
)


@dataclass(frozen=True)
class Token:
    value: str | None
    source: str  # where it came from, or every place it was looked for


def find_token(cfg: Config, config: str = "the config") -> Token:
    """$TOWERBOX_TOKEN, else the user's token file, else the node's CLI token file;
    ``config`` names the config file the node's state_dir came from."""
    token = os.environ.get(TOKEN_ENV)
    if token and token.strip():
        return Token(token.strip(), f"${TOKEN_ENV}")
    tried = [f"${TOKEN_ENV} (unset)"]
    node_file = Path(cfg.cli_token_file)
    for path in (USER_TOKEN_FILE, node_file):
        why = "empty"
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            why = "not there"
            text = ""
        except OSError as err:
            why = str(err.strerror).lower()
            text = ""
        if text:
            return Token(text, str(path))
        if path == node_file:
            why += f"; the node's CLI token, in state_dir from {config}"
        tried.append(f"{path} ({why})")
    return Token(None, ", ".join(tried))


def config_origin(named: Path | None) -> str:
    """The config file a command read, in words, for messages."""
    from appliance.config import DEFAULT_CONFIG_PATH

    if named is not None:
        return str(named)
    if DEFAULT_CONFIG_PATH.exists():
        return str(DEFAULT_CONFIG_PATH)
    return f"{DEFAULT_CONFIG_PATH} (absent: the defaults and $TOWERBOX_* variables)"


def config_path(args: argparse.Namespace) -> Path | None:
    """The config file named by --config or $TOWERBOX_CONFIG (None: the default one).

    A named file that is not there is an error: a typo would otherwise leave the CLI
    talking to another node with another token, and say nothing."""
    named = getattr(args, "config", None)
    origin = "--config"
    if named is None and os.environ.get("TOWERBOX_CONFIG"):
        named, origin = Path(os.environ["TOWERBOX_CONFIG"]), "$TOWERBOX_CONFIG"
    if named is not None and not Path(named).is_file():
        raise ConfigError(
            f"config file {named} (from {origin}) does not exist; name the node's config "
            "(etc/dev.toml for `make run`, /etc/towerbox/appliance.toml on a node) or "
            "leave it out to use the default",
            code="config_not_found",
        )
    return Path(named) if named is not None else None


def api_url(cfg: Config, url: str | None) -> str:
    """``--url``, else the local unix socket when it exists, else TCP on loopback."""
    if url:
        return url
    if cfg.api.socket and Path(cfg.api.socket).exists():
        return f"unix:{cfg.api.socket}"
    return f"http://{cfg.api.host}:{cfg.api.port}"


def _unreachable_hint(cfg: Config, url: str | None) -> str:
    if url:
        return "is the appliance running there?"
    socket = cfg.api.socket
    missing = f"no unix socket at {socket}, and " if socket and not Path(socket).exists() else ""
    return (
        f"{missing}is the appliance running (systemctl status towerbox-appliance, or "
        "`make run`)? --url or --config/$TOWERBOX_CONFIG point the CLI at another one"
    )


def _explained(err: TowerboxError, cfg: Config, url: str | None, token: Token) -> TowerboxError:
    """``err`` with what the operator needs to fix it: where the token was looked for,
    where the daemon was looked for."""
    from towerbox_core.sync_client import ApiError

    if isinstance(err, ApiError) and err.status == 401:
        if token.value is None:
            message = (
                f"{api_url(cfg, url)} needs a token and none was found (looked in "
                f"{token.source}); {HOW_TO_GET_A_TOKEN}"
            )
            return ApiError(401, "no_token", message, err.problem)
        message = (
            f"the token from {token.source} was refused by {api_url(cfg, url)} "
            f"({err.message}); it may be expired or revoked: {HOW_TO_GET_A_TOKEN}"
        )
        return ApiError(401, err.code, message, err.problem)
    if err.code == "appliance_unreachable":
        return TowerboxError(f"{err.message}; {_unreachable_hint(cfg, url)}", code=err.code)
    return err


def show_plain(args: argparse.Namespace, result: Any) -> None:
    """The answer for a person: text as it came, structures as ``key: value`` lines
    and tables; nothing for an empty answer."""
    if result is None:
        return
    if isinstance(result, str):
        sys.stdout.write(result)
        return
    out(human(result))


def show_json(result: Any) -> None:
    if isinstance(result, str):
        sys.stdout.write(result)
    elif result is not None:
        out(as_json(result))


def node_call(args: argparse.Namespace, call: Call, show: Show = show_plain) -> int:
    """Run one API call against the appliance and print its answer; the exit status."""
    from appliance.config_load import load_config
    from towerbox_core.sync_client import ApiClient

    url = getattr(args, "url", None)
    try:
        named = config_path(args)
        cfg = load_config(named)
    except TowerboxError as err:
        return report(err)
    token = find_token(cfg, config_origin(named))
    try:
        with ApiClient(api_url(cfg, url), token=token.value) as client:
            result = call(client)
    except TowerboxError as err:
        return report(_explained(err, cfg, url, token))
    if getattr(args, "json", False):
        show_json(result)
    else:
        show(args, result)
    return EXIT_OK


def json_arg(text: str, what: str) -> dict[str, Any]:
    """A JSON object from the command line (every one the API takes is an object); bad
    JSON is the caller's error, not a crash."""
    try:
        value = json.loads(text)
    except ValueError as err:
        raise InvalidInput(f"{what} is not valid JSON: {err}", code="invalid_json") from err
    if not isinstance(value, dict):
        raise InvalidInput(
            f"{what} must be a JSON object ({{...}}), not a {type(value).__name__}",
            code="invalid_json",
        )
    return value


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the API's answer as JSON")
