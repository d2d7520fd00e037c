"""Editing a desired document: the text parsed, the change as a diff (pure).

The registry validates what it can (tenants, services) and says what is wrong with a
code; the text's own syntax is checked here, before anything is sent.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from towerbox_core.errors import InvalidInput


def pretty(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def parse_document(text: str) -> dict[str, Any]:
    """The editor's text as a JSON object; InvalidInput saying where it is not one."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInput(
            f"not JSON: {err.msg} at line {err.lineno}, column {err.colno}",
            code="invalid_json",
            field="document",
        ) from err
    if not isinstance(document, dict):
        raise InvalidInput(
            "a desired document is a JSON object ({...})", code="invalid_document", field="document"
        )
    return document


def diff_lines(current: Any, edited: Any, label: str) -> list[str]:
    """A unified diff of the two documents, both in one canonical layout, so only what
    changed shows (not the way it was typed)."""
    before = pretty(current).splitlines() if current is not None else []
    after = pretty(edited).splitlines()
    return list(
        difflib.unified_diff(
            before, after, f"{label} (published)", f"{label} (yours)", lineterm="", n=2
        )
    )
