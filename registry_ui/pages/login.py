"""The login page: an operator's username and password for a registry token."""

from __future__ import annotations

from nicegui import ui

from registry_ui import session
from registry_ui.api import UNREACHABLE, ApiError, RegistryApi
from registry_ui.deps import Deps
from registry_ui.handles import tag
from towerbox_core.webui import login_failure, safe_next


class LoginForm:
    """Where the operator goes after a login is the page that sent them here."""

    def __init__(self, api: RegistryApi, target: str) -> None:
        self.api = api
        self.target = target
        fields = ui.column().classes("w-full gap-2").props('role="form" aria-label="Log in"')
        with fields:
            self.username = tag(ui.input("Username"), "login-username").classes("w-full")
            self.username.props("autocomplete=username autofocus outlined")
            self.password = tag(
                ui.input("Password", password=True, password_toggle_button=True),
                "login-password",
            ).classes("w-full")
            self.password.props("autocomplete=current-password outlined")
            self.message = tag(ui.label("").classes("text-negative"), "login-error")
            self.message.props('role="alert"')
            for field in (self.username, self.password):
                field.on("keydown.enter", self.submit)
            tag(ui.button("Log in", on_click=self.submit).classes("w-full"), "login-submit")

    async def submit(self) -> None:
        name, secret = self.username.value, self.password.value
        if not (name and secret):
            self.message.text = "Enter a username and a password."
            return
        self.message.text = ""
        try:
            token = await self.api.login(name, secret)
            identity = await self.api.request("GET", "/api/v1/auth/me", token)
        except ApiError as err:
            self.message.text = login_failure(err, UNREACHABLE, "the registry")
        else:
            session.sign_in(token, identity)
            ui.navigate.to(self.target)


def register(deps: Deps) -> None:
    @ui.page("/login", title="Towerbox fleet · log in")
    async def login_page(next: str = "/") -> None:
        with ui.card().classes("absolute-center w-96 gap-3"):
            ui.label("Towerbox fleet registry").classes("text-h5")
            ui.label(deps.settings.registry_url).classes("text-grey-8 text-sm")
            LoginForm(deps.api, safe_next(next))
