"""The Services page: each service of the caller's tenants with its roles' health,
its replicas and the progress of the operation under way (deploy, scale, rolling
update, remove), and a one-role service deployed from the catalog
(ui.pages.service_deploy); a role scaled and a service removed from its card
(ui.pages.service_actions), a role updated, rolling, with its plan shown first
(ui.pages.service_update)."""

from __future__ import annotations

import msgspec
from fastapi.responses import RedirectResponse
from nicegui import ui

from towerbox_core.api.services import RoleView, ServiceProgress, ServiceView
from ui.api import ApiError
from ui.deps import Deps
from ui.live import about
from ui.pages.common import error_label, open_page, tag
from ui.pages.service_actions import ScaleDialog, remove
from ui.pages.service_deploy import DeployDialog
from ui.pages.service_update import UpdateDialog
from ui.session import UserApi, notify_error
from ui.vm_offer import load_offer

STATE_COLOURS = {
    "ready": "positive",
    "failed": "negative",
    "deploying": "info",
    "updating": "info",
    "scaling": "info",
    "removing": "warning",
}
PROGRESS_LINES = 8  # the newest steps of an operation shown under a service
COLUMN_LABELS = {"vm": "VM"}


def progress_title(progress: ServiceProgress) -> str:
    """The operation and how it stands; a failed one (rolled back, stopped) is said
    so, its reason being the service's message."""
    if progress.failed:
        return f"{progress.operation} (failed: the message above says why)"
    return f"{progress.operation} ({'done' if progress.done else 'under way'})"


def role_line(view: ServiceView) -> str:
    """``api 2/3, db 1/1``: healthy replicas of each role over its count."""
    return ", ".join(f"{r.name} {r.healthy}/{r.count}" for r in view.roles) or "no roles"


def entry_line(view: ServiceView) -> str:
    """``web: demo v1; api: llm v2 (the catalog has v3: update to move)``."""

    def one(role: RoleView) -> str:
        at = f" v{role.version}" if role.version else ""
        if role.catalog_version is None:
            return f"{role.name}: {role.catalog}{at}"
        return (
            f"{role.name}: {role.catalog}{at} (the catalog has v{role.catalog_version}: "
            "update the role to move it)"
        )

    return "; ".join(one(r) for r in view.roles)


class ServiceList:
    def __init__(self, user: UserApi) -> None:
        self.user = user
        self._shown: list[ServiceView] | None = None
        # Dialogs live outside the list: a refresh that redraws the cards keeps them.
        self.dialog_box = ui.element("div")
        self.box = tag(ui.column().classes("w-full gap-4"), "service-list")

    async def refresh(self) -> None:
        try:
            raw = await self.user.get("/api/v1/services")
            views = msgspec.convert(raw, list[ServiceView])
        except (ApiError, msgspec.ValidationError) as err:
            self._shown = None
            self.box.clear()
            with self.box:
                if isinstance(err, ApiError):
                    error_label(err, "Loading the services failed")
                else:
                    ui.label(f"The appliance answered something unexpected: {err}")
            return
        if views == self._shown:
            return  # nothing changed: send nothing to the browser
        self._shown = views
        self.box.clear()
        with self.box:
            if not views:
                ui.label("No services yet: deploy one from the catalog.")
            for view in views:
                self._draw(view)

    def _draw(self, view: ServiceView) -> None:
        with tag(ui.card().classes("w-full"), f"service-{view.name}"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label(view.name).classes("text-h6")
                ui.label(f"tenant {view.tenant}").classes("text-grey-8")
                if view.managed_by == "registry":
                    with tag(
                        ui.badge("from the registry", color="grey-7").props("outline"),
                        f"service-managed-{view.name}",
                    ):
                        ui.tooltip(
                            "A services document from the fleet registry made this service: "
                            "its next version sets the service back to what the document says."
                        )
                tag(
                    ui.badge(view.state, color=STATE_COLOURS.get(view.state, "grey")),
                    f"service-state-{view.name}",
                )
                ui.space()
                tag(ui.label(role_line(view)), f"service-health-{view.name}")
                self._actions(view)
            if view.message:
                ui.label(view.message).classes("text-sm text-grey-8")
            rows = [
                {
                    "role": role.name,
                    "vm": rep.vm,
                    "generation": rep.generation,
                    "state": rep.state,
                    "healthy": "yes" if rep.healthy else "no",
                    "detail": rep.detail,
                }
                for role in view.roles
                for rep in role.replicas
            ]
            checks = "; ".join(f"{r.name}: {r.health}" for r in view.roles)
            ui.label(f"Health checks: {checks}").classes("text-sm")
            tag(
                ui.label(f"Catalog entries: {entry_line(view)}").classes("text-sm"),
                f"service-entries-{view.name}",
            )
            if rows:
                columns = [
                    _column(k) for k in ("role", "vm", "generation", "state", "healthy", "detail")
                ]
                tag(
                    ui.table(columns=columns, rows=rows, row_key="vm").classes("w-full"),
                    f"service-replicas-{view.name}",
                ).props(f'aria-label="Replicas of {view.name}" dense flat')
            progress = view.progress
            if progress is not None:
                tag(
                    ui.label(progress_title(progress)).classes(
                        "text-sm font-bold" + (" text-negative" if progress.failed else "")
                    ),
                    f"service-progress-title-{view.name}",
                )
                with tag(ui.column().classes("gap-0"), f"service-progress-{view.name}"):
                    for step in progress.steps[-PROGRESS_LINES:]:
                        ui.label(step).classes("text-sm font-mono")

    def _actions(self, view: ServiceView) -> None:
        # Only a ready service scales; a removal also stops a deploy, scale or update
        # under way, so it is offered in every state but its own.
        def scale() -> None:
            self.dialog_box.clear()
            with self.dialog_box:
                ScaleDialog(self.user, view, self.refresh).open()

        async def update() -> None:
            try:
                catalog = await self.user.get("/api/v1/catalog")
            except ApiError as err:
                notify_error(err, "Loading the catalog")
                return
            self.dialog_box.clear()
            with self.dialog_box:
                UpdateDialog(self.user, view, catalog, self.refresh).open()

        async def drop() -> None:
            await remove(self.user, view, self.refresh)

        scaling = tag(ui.button("Scale", on_click=scale), f"service-scale-{view.name}")
        scaling.props("flat dense").set_enabled(view.state == "ready")
        updating = tag(ui.button("Update", on_click=update), f"service-update-{view.name}")
        updating.props("flat dense").set_enabled(view.state == "ready")
        removing = tag(ui.button("Remove", on_click=drop), f"service-remove-{view.name}")
        removing.props("flat dense color=negative").set_enabled(view.state != "removing")


def _column(key: str) -> dict[str, str]:
    label = COLUMN_LABELS.get(key, key.capitalize())
    return {"name": key, "label": label, "field": key, "align": "left"}


def register(deps: Deps) -> None:
    @ui.page("/services", title="Towerbox · Services")
    async def services_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/services", "services")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            with ui.row().classes("w-full items-center"):
                ui.label("Services").classes("text-h5")
                ui.space()
                deploy_button = tag(ui.button("Deploy from the catalog"), "deploy-open")
            dialog_box = ui.element("div")  # where the dialog is drawn, once per opening
            services = ServiceList(user)
            await services.refresh()

            async def open_deploy() -> None:
                try:
                    catalog = await user.get("/api/v1/catalog")
                    offer = await load_offer(user)
                except ApiError as err:
                    notify_error(err, "Loading the catalog")
                    return
                dialog_box.clear()
                with dialog_box:
                    DeployDialog(user, catalog, offer, services.refresh).open()

            deploy_button.on_click(open_deploy)
            frame.live.watch(services.refresh, deps.settings.live_poll_s, about("service", "vm"))
            frame.start()
        return None
