"""What pages share: the sign-in guard, error labels, the element handles."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import RedirectResponse
from nicegui import ui

from towerbox_core.webui import safe_next
from ui import session
from ui.api import ApiError
from ui.deps import Deps
from ui.frame import Frame, build_frame
from ui.handles import tag
from ui.session import UserApi


def login_redirect(path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(path, safe='/')}", status_code=303)


async def open_page(deps: Deps, path: str, active: str) -> tuple[UserApi, Frame] | RedirectResponse:
    current = session.current()
    if current is None:
        return login_redirect(path)
    user = UserApi(deps.api, current)
    frame = await build_frame(deps, user, active)
    return user, frame


def error_label(err: ApiError, doing: str) -> ui.label:
    label = ui.label(f"{doing}: {err.text}").classes("text-negative")
    label.props('role="alert"')
    return label


__all__ = ["error_label", "login_redirect", "open_page", "safe_next", "tag"]
