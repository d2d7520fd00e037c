"""The login page: username and password for an appliance token."""

from __future__ import annotations

from nicegui import ui

from towerbox_core.webui import login_failure
from ui import session
from ui.api import UNREACHABLE, ApiError
from ui.deps import Deps
from ui.pages.common import safe_next, tag


def register(deps: Deps) -> None:
    @ui.page("/login", title="Towerbox · log in")
    async def login_page(next: str = "/") -> None:
        target = safe_next(next)
        with ui.card().classes("absolute-center w-96 gap-3"):
            ui.label("Towerbox").classes("text-h5")
            node = tag(ui.label("").classes("text-grey-8"), "login-node")
            try:
                health = await deps.api.health()
                node.text = f"Node {health.get('node', '?')}"
            except ApiError as err:
                node.text = f"Appliance unreachable: {err.text}"
                node.classes("text-negative")
            with ui.column().classes("w-full gap-2").props('role="form" aria-label="Log in"'):
                username = tag(
                    ui.input("Username").props("autocomplete=username autofocus outlined"),
                    "login-username",
                ).classes("w-full")
                password = tag(
                    ui.input("Password", password=True, password_toggle_button=True).props(
                        "autocomplete=current-password outlined"
                    ),
                    "login-password",
                ).classes("w-full")
                message = tag(ui.label("").classes("text-negative"), "login-error")
                message.props('role="alert"')

                async def submit() -> None:
                    message.text = ""
                    if not username.value or not password.value:
                        message.text = "Enter a username and a password."
                        return
                    try:
                        answer = await deps.api.login(username.value, password.value)
                        token = str(answer["token"])
                        me = await deps.api.request("GET", "/api/v1/auth/me", token)
                    except ApiError as err:
                        message.text = _login_message(err)
                        return
                    session.sign_in(token, me)
                    ui.navigate.to(target)

                password.on("keydown.enter", submit)
                username.on("keydown.enter", submit)
                tag(ui.button("Log in", on_click=submit).classes("w-full"), "login-submit")


def _login_message(err: ApiError) -> str:
    return login_failure(err, UNREACHABLE, "the appliance")
