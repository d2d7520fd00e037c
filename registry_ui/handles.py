"""Stable handles on elements for Chromium (data-testid) and NiceGUI's User tests (markers)."""

from __future__ import annotations

from typing import TypeVar

from nicegui import ui

E = TypeVar("E", bound=ui.element)


def tag(element: E, name: str) -> E:
    element.mark(name)
    element.props(f'data-testid="{name}"')
    return element
