"""Values a VM create may set for an entry's cloud-init template, declared by the entry.

An entry declares each value under ``[cloud_init.values.<name>]``: its type, a
default, whether a request must give it, limits (pattern, max_length, max_items)
and whether it is a secret. ``check_values`` turns a request's untyped ``values``
object into typed values, refusing with a stable code and the field
(``values.<name>``); ``redacted`` is what may be journalled or shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from towerbox_core.errors import InvalidInput

INVALID_ENTRY = "invalid_catalog_entry"
# Placeholders the node fills itself; an entry may not declare them.
BUILTIN_VALUES = ("vm_name", "tenant", "instance_id")
REDACTED = "(secret)"
_VALUE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
# Every value ends up inside a double-quoted YAML scalar: no line breaks, quotes or
# backslashes that could end it and smuggle in keys of their own.
_UNSAFE_RE = re.compile(r'[\x00-\x1f\x7f"\\]')
_DEFAULT_MAX_LENGTH = 4096
_DEFAULT_MAX_ITEMS = 64

ValueType = Literal["string", "integer", "boolean", "list"]
Value = str | int | bool | tuple[str, ...]


class ValueDecl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One value a request may set; ``list`` is a list of strings (e.g. SSH keys)."""

    type: ValueType = "string"
    description: str = ""
    default: str | int | bool | list[str] | None = None
    required: bool = False  # a request must give it (a default makes no sense then)
    secret: bool = False  # never journalled or shown, only written to the seed
    pattern: str | None = None  # strings and list items must match it in full
    max_length: int = _DEFAULT_MAX_LENGTH  # characters of a string or of each item
    max_items: int = _DEFAULT_MAX_ITEMS  # lists only
    minimum: int | None = None  # integers only
    maximum: int | None = None


def check_declarations(decls: Mapping[str, ValueDecl]) -> None:
    """Refuse declarations that could never be met, at catalog load."""
    for name, decl in decls.items():
        field = f"cloud_init.values.{name}"
        if not _VALUE_NAME_RE.match(name) or name in BUILTIN_VALUES:
            raise InvalidInput(
                f"value name {name!r} must be lower-case letters, digits and '_', and not "
                f"one the node fills itself ({', '.join(BUILTIN_VALUES)})",
                code=INVALID_ENTRY,
                field=field,
            )
        if decl.pattern is not None:
            try:
                re.compile(decl.pattern)
            except re.error as err:
                raise InvalidInput(
                    f"pattern of {name!r} is not a regular expression: {err}",
                    code=INVALID_ENTRY,
                    field=f"{field}.pattern",
                ) from err
        if not 1 <= decl.max_length <= 65536 or not 1 <= decl.max_items <= 1024:
            raise InvalidInput(
                "max_length must be 1..65536 and max_items 1..1024",
                code=INVALID_ENTRY,
                field=field,
            )
        if decl.required and decl.default is not None:
            raise InvalidInput(
                f"value {name!r} is required and has a default: pick one",
                code=INVALID_ENTRY,
                field=f"{field}.default",
            )
        if decl.default is not None:
            try:
                _check_one(name, decl, decl.default)
            except InvalidInput as err:
                raise InvalidInput(
                    f"default of {name!r}: {err.message}",
                    code=INVALID_ENTRY,
                    field=f"{field}.default",
                ) from err


def check_values(decls: Mapping[str, ValueDecl], given: Mapping[str, Any]) -> dict[str, Value]:
    """The typed values for a create: each given one checked, defaults filled in."""
    for name in given:
        if name not in decls:
            known = ", ".join(sorted(decls)) or "none"
            raise InvalidInput(
                f"value {name!r} is not one this appliance takes; known: {known}",
                code="unknown_value",
                field=f"values.{name}",
            )
    result: dict[str, Value] = {}
    for name, decl in decls.items():
        if name in given:
            result[name] = _check_one(name, decl, given[name])
        elif decl.default is not None:
            result[name] = _check_one(name, decl, decl.default)
        elif decl.required:
            raise InvalidInput(
                f"value {name!r} is required", code="missing_value", field=f"values.{name}"
            )
    return result


def redacted(decls: Mapping[str, ValueDecl], values: Mapping[str, object]) -> dict[str, Any]:
    """Values as they may be journalled or shown: secrets replaced by a marker, and so
    is a value the declarations no longer name (a catalog entry changed since: it may
    have been a secret)."""
    return {
        name: REDACTED
        if name not in decls or decls[name].secret
        else (list(v) if isinstance(v, tuple) else v)
        for name, v in values.items()
    }


def _check_one(name: str, decl: ValueDecl, raw: object) -> Value:
    field = f"values.{name}"
    if decl.type == "boolean":
        if not isinstance(raw, bool):
            raise _wrong_type(name, decl, field, raw)
        return raw
    if decl.type == "integer":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _wrong_type(name, decl, field, raw)
        low = decl.minimum if decl.minimum is not None else -(2**63)
        high = decl.maximum if decl.maximum is not None else 2**63 - 1
        if not low <= raw <= high:
            raise InvalidInput(
                f"value {name!r} must be between {low} and {high}, got {raw}",
                code="invalid_value",
                field=field,
            )
        return raw
    if decl.type == "list":
        if not isinstance(raw, list | tuple) or not all(isinstance(i, str) for i in raw):
            raise _wrong_type(name, decl, field, raw)
        if len(raw) > decl.max_items:
            raise InvalidInput(
                f"value {name!r} holds {len(raw)} items, at most {decl.max_items}",
                code="value_too_long",
                field=field,
            )
        return tuple(_check_text(name, decl, item, f"{field}[{i}]") for i, item in enumerate(raw))
    if not isinstance(raw, str):
        raise _wrong_type(name, decl, field, raw)
    return _check_text(name, decl, raw, field)


def _check_text(name: str, decl: ValueDecl, text: str, field: str) -> str:
    # Secrets are never echoed back in a message.
    shown = "" if decl.secret else f" {text[:64]!r}"
    if len(text) > decl.max_length:
        raise InvalidInput(
            f"value {name!r} is {len(text)} characters long, at most {decl.max_length}",
            code="value_too_long",
            field=field,
        )
    if _UNSAFE_RE.search(text):
        raise InvalidInput(
            f"value {name!r} may not hold line breaks, control characters, '\"' or '\\'",
            code="invalid_value",
            field=field,
        )
    if decl.pattern is not None and not re.fullmatch(decl.pattern, text):
        raise InvalidInput(
            f"value {name!r}{shown} does not match {decl.pattern!r}",
            code="invalid_value",
            field=field,
        )
    return text


def _wrong_type(name: str, decl: ValueDecl, field: str, raw: object) -> InvalidInput:
    wanted = "a list of strings" if decl.type == "list" else f"a {decl.type}"
    got = _KINDS.get(type(raw), type(raw).__name__)
    hint = ""
    if decl.type == "string" and isinstance(raw, bool | int | float) and not decl.secret:
        # The CLI sends what reads as JSON typed: a string like 5 or true needs quotes.
        text = json.dumps(raw)
        hint = f'; a string is quoted: "{text}" (on the command line --value \'{name}="{text}"\')'
    return InvalidInput(
        f"value {name!r} must be {wanted}, got {got}{hint}",
        code="invalid_value_type",
        field=field,
    )


# JSON's names for what a request's value was.
_KINDS: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    tuple: "a list",
    dict: "an object",
    type(None): "null",
}
