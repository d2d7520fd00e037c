"""Inputs for the values a catalog entry declares (its cloud-init template's): one per
value, of its type (a secret's hidden, a list one per line, the default shown), used
by the VM create wizard and the service deploy form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement

from ui.handles import tag
from ui.vm_offer import typed_value, value_label


class ValueFields:
    def __init__(self, marker: str) -> None:
        """``marker``: the test handle prefix; each input is ``<marker>-<name>``."""
        self.marker = marker
        self.box = tag(ui.column().classes("w-full gap-0"), marker)
        self._fields: dict[str, tuple[dict[str, Any], ValidationElement[Any]]] = {}

    def draw(
        self, decls: dict[str, dict[str, Any]], current: Mapping[str, Any] | None = None
    ) -> None:
        """The inputs for an entry's declarations (none: nothing shown); ``current``:
        the values set now (a role's), filled in, a secret one only said to be set."""
        self.box.clear()
        self._fields = {}
        if not decls:
            return
        now = current or {}
        with self.box:
            ui.label("Values").classes("text-subtitle2 q-mt-sm")
            for name, decl in sorted(decls.items()):
                default = decl.get("default")
                label = value_label(name, decl)
                secret = bool(decl.get("secret"))
                filled = None if secret else now.get(name)
                element: ValidationElement[Any]
                if decl.get("type") == "boolean":
                    on = bool(default) if filled is None else bool(filled)
                    element = ui.checkbox(label, value=on)  # type: ignore[assignment]
                elif decl.get("type") == "integer":
                    element = ui.number(
                        label, value=filled, precision=0, placeholder=_shown(default)
                    )
                elif decl.get("type") == "list":
                    lines = "\n".join(map(str, filled)) if isinstance(filled, list) else ""
                    element = ui.textarea(label, value=lines, placeholder="one per line")
                else:
                    hidden = "set; left empty it stays" if secret and name in now else ""
                    element = ui.input(
                        label,
                        value="" if filled is None else str(filled),
                        placeholder=hidden or _shown(default),
                        password=secret,
                    )
                tag(element.classes("w-full"), f"{self.marker}-{name}")
                if hint := _hint(decl):
                    ui.label(hint).classes("text-xs text-grey-7")
                self._fields[name] = (decl, element)

    def values(self) -> dict[str, Any]:
        """As typed; the request leaves out the empty ones (see create_body)."""
        return {n: typed_value(d, e.value) for n, (d, e) in self._fields.items()}

    def clear_errors(self) -> None:
        for _, element in self._fields.values():
            element.error = None

    def input_for(self, field: str | None) -> ValidationElement[Any] | None:
        """The input a refusal's field names: ``values.<name>``, or the same after a
        role's prefix (``roles[0].values.<name>``)."""
        if field and "values." in field:
            found = self._fields.get(field.rpartition("values.")[2])
            return found[1] if found else None
        return None


def _shown(default: Any) -> str:
    return "" if default is None else f"default: {default}"


def _hint(decl: dict[str, Any]) -> str:
    """The description, and the default a value left empty takes (a placeholder shows
    only in a focused input, so the default is said below it too)."""
    default = decl.get("default")
    parts = [str(decl.get("description") or "")]
    if isinstance(default, list):
        default = ", ".join(map(str, default))
    if default not in (None, "") and decl.get("type") != "boolean":
        parts.append(_shown(default))
    return " · ".join(p for p in parts if p)
