"""A refusal from the API shown at the form input it names, the rest of the form as typed.

The appliance names the field at fault (``field``, or msgspec's ``errors[0].key``);
a form keeps its inputs by those names and shows the message under the one named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement

from ui.api import ApiError


def field_of(err: ApiError, prefix: str = "spec.") -> str | None:
    """The form input a problem points at: "vcpus", "name", "spec.memory_mib" -> memory_mib.

    ``prefix`` is the request's own wrapper, dropped first ("trunk.ports" -> ports).
    """
    name = err.field
    if name is None:
        errors = err.problem.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            name = str(errors[0].get("key") or "") or None
    if name is None:
        return None
    return name.removeprefix(prefix).split(".")[0].split("[")[0]


def show_refusal(
    err: ApiError,
    inputs: Mapping[str, ValidationElement[Any]],
    fallback: ui.label,
    prefix: str = "spec.",
    by_code: Mapping[str, str] | None = None,
) -> None:
    """The problem under the input it names, or in ``fallback`` when it names none.

    ``by_code``: problems that name no field but are about one (a VLAN taken by
    another VNet is about the VLAN input).
    """
    name = field_of(err, prefix) or (by_code or {}).get(err.code) or ""
    target = inputs.get(name)
    if target is not None:
        target.error = err.text
    else:
        fallback.text = err.text


def clear_errors(inputs: Mapping[str, ValidationElement[Any]], fallback: ui.label) -> None:
    for element in inputs.values():
        element.error = None
    fallback.text = ""
