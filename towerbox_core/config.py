"""Configuration as the appliance, the registry and the agent all read it.

A TOML file, then the environment on top: ``<PREFIX><KEY>`` for a top-level key and
``<PREFIX><SECTION>_<KEY>`` for a key of ``[section]``. Values are typed by the
dataclass defaults; unknown keys are refused so a typo never passes silently.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import msgspec

from towerbox_core.errors import ConfigError


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
    default = cls()
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in sections:
            table = raw.get(f.name, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{origin}: [{f.name}] must be a table")
            values[f.name] = _section(sections[f.name], table, env, prefix, f.name, origin)
            continue
        value = env.get(prefix + f.name.upper(), raw.get(f.name))
        if value is not None:
            values[f.name] = coerce(value, type(getattr(default, f.name)), f.name, origin)
    return replace(default, **values)


def _section(
    cls: type[Any],
    raw: Mapping[str, Any],
    env: Mapping[str, str],
    prefix: str,
    name: str,
    origin: str,
) -> Any:
    unknown = set(raw) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"{origin}: unknown keys in [{name}]: {sorted(unknown)}")
    default = cls()
    values: dict[str, Any] = {}
    for f in fields(cls):
        value = env.get(f"{prefix}{name.upper()}_{f.name.upper()}", raw.get(f.name))
        if value is not None:
            values[f.name] = coerce(
                value, type(getattr(default, f.name)), f"{name}.{f.name}", origin
            )
    return replace(default, **values)


def coerce(value: Any, kind: type[Any], key: str, origin: str) -> Any:
    """A file or environment value as the type of the key's default."""
    if kind is bool and isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    if kind is dict and isinstance(value, str):  # a table from the environment, as JSON
        try:
            value = msgspec.json.decode(value)
        except msgspec.DecodeError as err:
            raise ConfigError(f"{origin}: {key} must be a JSON object: {err}", field=key) from err
    bad = ConfigError(f"{origin}: {key} must be {kind.__name__}, got {value!r}", field=key)
    if kind in (int, float) and isinstance(value, bool):
        raise bad
    try:
        return kind(value)
    except (TypeError, ValueError) as err:
        raise bad from err
