"""What pages share: the sign-in guard, the frame, error labels."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import RedirectResponse
from nicegui import ui

from registry_ui import session
from registry_ui.api import ApiError
from registry_ui.deps import Deps
from registry_ui.frame import Frame
from registry_ui.handles import tag
from registry_ui.session import OperatorApi


async def open_page(
    deps: Deps, path: str, active: str
) -> tuple[OperatorApi, Frame] | RedirectResponse:
    """The signed-in operator's API and the page's frame; to the login page otherwise."""
    operator = session.current()
    if operator is None:
        return RedirectResponse(f"/login?next={quote(path, safe='/?=&')}", status_code=303)
    user = OperatorApi(deps.api, operator)
    return user, Frame(deps.api, user, active, deps.settings.poll_s)


def problem_label(err: ApiError, doing: str) -> ui.label:
    """A registry refusal as a sentence with its code, where the page's content would be."""
    label = ui.label(f"{doing}: {err.text}").classes("text-negative")
    label.props('role="alert"')
    return label


def show_once(box: ui.column, title: str, token: str, prefix: str, how: str) -> None:
    """A secret on this page only: it is in no session, log or later answer."""
    box.clear()
    with box, ui.card().classes("w-full bg-amber-1"):
        ui.label(title).classes("text-h6")
        with ui.row().classes("items-center gap-2"):
            tag(ui.label(token).classes("font-mono text-sm"), f"{prefix}-token")
            tag(
                ui.button("Copy", on_click=lambda: ui.clipboard.write(token)), f"{prefix}-copy"
            ).props("flat dense")
        tag(
            ui.label(
                "Copy it now: it will not be shown again. The registry keeps only its hash. " + how
            ),
            f"{prefix}-warning",
        ).classes("text-amber-10")


async def confirm(question: str, action: str) -> bool:
    """Ask before an action that cannot be taken back; True when the operator agrees."""
    with ui.dialog() as dialog, ui.card():
        ui.label(question)
        with ui.row():
            tag(ui.button(action, on_click=lambda: dialog.submit(True)), "confirm-yes").props(
                "color=negative"
            )
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
    return bool(await dialog)
