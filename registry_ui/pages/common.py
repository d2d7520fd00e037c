"""What pages share: the sign-in guard, the frame, error labels."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import RedirectResponse
from nicegui import ui

from registry_ui import session
from registry_ui.api import ApiError
from registry_ui.deps import Deps
from registry_ui.frame import Frame
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
