"""Configuration as the appliance, the registry and the agent all read it.

A TOML file, then the environment on top: ``<PREFIX><KEY>`` for a top-level key and
``<PREFIX><SECTION>_<KEY>`` for a key of ``[section]``. Values are typed by the
dataclass defaults and converted by msgspec in its lax mode, so the environment's
strings become numbers and booleans; unknown keys are refused so a typo never passes
silently.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import msgspec

from towerbox_core.errors import ConfigError

# The words the configuration has always taken for a boolean. msgspec's lax mode
# knows only true/false/1/0; the others are spelled out for it here.
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
# Python's int() and TOML both read 200_000; msgspec does not.
_DIGIT_SEPARATOR = re.compile(r"(?<=\d)_(?=\d)")


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The file's tables, or {} when it does not exist."""
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read {what} {path}: {err}") from err


def build(
    cls: type[Any],
    raw: Mapping[str, Any],
    env: Mapping[str, str],
    prefix: str,
    origin: str,
    sections: Mapping[str, type[Any]] | None = None,
) -> Any:
    """An instance of the dataclass ``cls`` from file values and the environment."""
    sections = sections or {}
    unknown = set(raw) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"{origin}: unknown keys {sorted(unknown)}")
    config = _fill(cls, raw, env, prefix, "", origin, skip=set(sections))
    tables: dict[str, Any] = {}
    for name, section in sections.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}: [{name}] must be a table")
        unknown = set(table) - {f.name for f in fields(section)}
        if unknown:
            raise ConfigError(f"{origin}: unknown keys in [{name}]: {sorted(unknown)}")
        env_prefix = f"{prefix}{name.upper()}_"
        tables[name] = _fill(section, table, env, env_prefix, f"{name}.", origin)
    return replace(config, **tables)


def _fill(
    cls: type[Any],
    raw: Mapping[str, Any],
    env: Mapping[str, str],
    env_prefix: str,
    key_prefix: str,
    origin: str,
    skip: set[str] | None = None,
) -> Any:
    """The dataclass's defaults, with the table's values and then the environment's."""
    default = cls()
    values: dict[str, Any] = {}
    for f in fields(cls):
        if skip and f.name in skip:
            continue
        kind = type(getattr(default, f.name))
        key = key_prefix + f.name
        env_name = env_prefix + f.name.upper()
        if env_name in env:
            values[f.name] = convert(env[env_name], kind, key, origin, env_name)
        elif raw.get(f.name) is not None:
            values[f.name] = convert(raw[f.name], kind, key, origin)
    return replace(default, **values)


def convert(value: Any, kind: type[Any], key: str, origin: str, env_name: str = "") -> Any:
    """A file or environment value as ``kind``, the type of the key's default.

    A string becomes a number or a boolean when the key wants one, and a table when
    it is a JSON object; ``env_name`` names the variable it came from, if any.
    """
    source = f" (from {env_name})" if env_name else ""
    if isinstance(value, str) and kind is dict:  # a table from the environment, as JSON
        try:
            return msgspec.json.decode(value, type=dict)
        except msgspec.DecodeError as err:
            raise ConfigError(
                f"{origin}: {key} must be a JSON object{source}: {err}", field=key
            ) from err
    text = value
    if isinstance(value, str) and kind in (bool, int, float):
        text = value.strip()
        if kind is bool and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        text = _DIGIT_SEPARATOR.sub("", text)
    try:
        return msgspec.convert(text, kind, strict=False)
    except msgspec.ValidationError as err:
        hint = " (true/false, yes/no, on/off or 1/0)" if kind is bool else ""
        raise ConfigError(
            f"{origin}: {key} must be {kind.__name__}{hint}, got {value!r}{source}", field=key
        ) from err


# sun_path holds 108 bytes with its terminating NUL; the kernel refuses a longer path
# at bind and at connect alike, so a daemon would only learn of it when it starts to
# serve, after everything else is built.
UNIX_SOCKET_PATH_MAX = 107


def check_socket_path(path: str, key: str, origin: str) -> None:
    """Refuse a unix socket path that no process could bind or connect to."""
    size = len(os.fsencode(path))
    if size > UNIX_SOCKET_PATH_MAX:
        raise ConfigError(
            f"{origin}: {key} is {size} bytes long ({path}); a unix socket path holds at "
            f"most {UNIX_SOCKET_PATH_MAX}: choose a shorter path",
            code="socket_path_too_long",
            field=key,
        )
