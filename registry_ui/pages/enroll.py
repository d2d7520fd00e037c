"""Enrollment: create a site and its one-time token (shown once), list sites never
enrolled; provisioning credentials and a site's node below (pages.provisioning)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from registry_ui.api import ApiError, site_path
from registry_ui.deps import Deps
from registry_ui.forms import labels_from
from registry_ui.handles import tag
from registry_ui.pages.common import open_page, problem_label, show_once
from registry_ui.pages.provisioning import Credentials, NodeOfSite
from registry_ui.session import OperatorApi
from towerbox_core.errors import InvalidInput


class Enrollment:
    def __init__(self, user: OperatorApi) -> None:
        self.user = user
        ui.label("Enrollment").classes("text-h5")
        if user.operator.admin:
            with ui.card().classes("w-[36rem] gap-2"):
                ui.label("New site").classes("text-h6")
                self.name = tag(ui.input("Site name"), "enroll-name").classes("w-full")
                self.region = tag(ui.input("Region"), "enroll-region").classes("w-full")
                self.labels = tag(ui.input("Labels (key=value, comma-separated)"), "enroll-labels")
                self.labels.classes("w-full")
                self.error = tag(ui.label("").classes("text-negative"), "enroll-error")
                self.error.props('role="alert"')
                tag(ui.button("Create site and token", on_click=self.create), "enroll-create")
        else:
            ui.label("Viewers see the sites waiting for a node; an admin creates them.").classes(
                "text-grey-7"
            )
        self.token_box = tag(ui.column().classes("w-full"), "enroll-token-box")
        # Zero-touch and replacement before the list of waiting sites, which may be long.
        self.credentials = Credentials(user)
        NodeOfSite(user)
        with ui.card().classes("w-full"):
            ui.label("Sites never enrolled").classes("text-h6")
            self.waiting = tag(ui.column().classes("w-full gap-0"), "enroll-waiting")

    async def create(self) -> None:
        self.error.text = ""
        try:
            labels = labels_from(self.labels.value or "")
        except InvalidInput as err:
            self.error.text = f"{err.message} [{err.code}]"
            return
        body = {"name": (self.name.value or "").strip(), "region": self.region.value or ""}
        try:
            made = await self.user.call("POST", "/api/v1/sites", json={**body, "labels": labels})
        except ApiError as err:
            self.error.text = f"The registry refused it: {err.text}"
            return
        self.show_token(made["name"], made["enrollment_token"], made["enrollment_expires_at"])
        self.name.value = ""
        await self.list_waiting()

    async def new_token(self, name: str) -> None:
        try:
            issued = await self.user.call("POST", site_path(name, "enrollment-tokens"))
        except ApiError as err:
            ui.notify(f"New token for {name} failed: {err.text}", type="negative")
            return
        self.show_token(name, issued["token"], issued["expires_at"])

    def show_token(self, site: str, token: str, expires: str) -> None:
        show_once(
            self.token_box,
            f"Enrollment token for {site}",
            token,
            "enroll",
            f"Valid until {expires}, for one enrollment: "
            "towerbox agent enroll <registry-url> <token> on the node.",
        )

    async def list_waiting(self) -> None:
        try:
            answer = await self.user.get("/api/v1/sites", params={"status": "pending"})
        except ApiError as err:
            self.waiting.clear()
            with self.waiting:
                problem_label(err, "Listing sites")
            return
        waiting: list[dict[str, Any]] = [s for s in answer["sites"] if not s["enrolled"]]
        self.waiting.clear()
        with self.waiting:
            if not waiting:
                ui.label("Every site has enrolled.").classes("text-grey-7")
            for site in waiting:
                with tag(ui.row().classes("items-center gap-3"), f"waiting-{site['name']}"):
                    ui.link(site["name"], f"/sites/{site['name']}").classes("w-48")
                    ui.label(site["region"] or "-").classes("w-24")
                    if self.user.operator.admin:
                        ui.button(
                            "New token", on_click=lambda n=site["name"]: self.new_token(n)
                        ).props("flat dense")


def register(deps: Deps) -> None:
    @ui.page("/enroll", title="Towerbox fleet · enrollment")
    async def enroll_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/enroll", "enroll")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            page = Enrollment(user)
        await page.list_waiting()
        await page.credentials.load()
        frame.start()
        return None
