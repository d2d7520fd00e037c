"""The frame on every page: title, navigation, who is signed in, the registry banner.

The banner says when the registry does not answer; the page under it keeps what it
showed last, and the UI process keeps running until the registry is back.
"""

from __future__ import annotations

import contextlib

from nicegui import ui

from registry_ui import session
from registry_ui.api import ApiError, RegistryApi
from registry_ui.handles import tag
from registry_ui.nav import BANNER_CLASSES, NAV
from registry_ui.session import OperatorApi


class Frame:
    def __init__(self, api: RegistryApi, user: OperatorApi, active: str, poll_s: float) -> None:
        self.api = api
        self.user = user
        self.poll_s = poll_s
        self._down: str | None = None
        with ui.header(elevated=True).classes("bg-slate-800 text-white items-center gap-3 py-2"):
            ui.link("Towerbox fleet", "/").classes("text-lg font-bold text-white no-underline")
            ui.space()
            with ui.element("nav").props('aria-label="Main"').classes("flex gap-3"):
                for key, text, path in NAV:
                    link = ui.link(text, path).classes("text-white")
                    if key == active:
                        link.classes("font-bold underline").props('aria-current="page"')
            who = user.operator
            tag(ui.label(f"{who.username} ({who.role})"), "operator")
            ui.button("Log out", on_click=self.logout).props("flat dense color=white")
        self.banner = tag(ui.label("").classes(BANNER_CLASSES["ok"]), "registry-banner")
        self.banner.props('role="status" aria-live="polite"')
        self.content = ui.column().classes("w-full p-4 gap-4")

    def start(self) -> None:
        """Poll after the page is built: a timer makes NiceGUI answer before it is done."""
        ui.timer(self.poll_s, self.check)

    async def check(self) -> None:
        try:
            await self.api.health()
        except ApiError as err:
            self.show_down(err)
        else:
            self.show_up()

    def show_down(self, err: ApiError) -> None:
        text = f"Registry unreachable: {err.text}. Figures below are as last read."
        if text != self._down:
            self._down = text
            self.banner.text = text
            self.banner.classes(replace=BANNER_CLASSES["down"])

    def show_up(self) -> None:
        if self._down is not None:
            self._down = None
            self.banner.text = ""
            self.banner.classes(replace=BANNER_CLASSES["ok"])

    def report(self, err: ApiError) -> bool:
        """Banner for an unreachable registry; False when the error is the page's to show."""
        if err.status == 0:
            self.show_down(err)
            return True
        return False

    async def logout(self) -> None:
        # The token is forgotten here either way; at the registry it expires.
        with contextlib.suppress(ApiError):
            await self.user.call("POST", "/api/v1/auth/logout")
        session.sign_out()
        ui.navigate.to("/login")
