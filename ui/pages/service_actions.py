"""Scaling a service's role and removing a service, from its card on the Services page.

Both answer at once and work in the background (the card follows the progress). A
removal takes every VM of the service down for good, so the operator types the
service's name to go on. A rolling update has its own dialog (ui.pages.service_update).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from nicegui import ui

from towerbox_core.api.services import MAX_REPLICAS, ServiceView
from ui.api import ApiError, service_path
from ui.handles import tag
from ui.session import UserApi
from ui.vm_actions import confirm


class ScaleDialog:
    """A role and its new replica count; the API's refusal (a quota, no capacity) is
    shown in the dialog, which stays open with what was chosen."""

    def __init__(
        self, user: UserApi, view: ServiceView, on_done: Callable[[], Awaitable[None]]
    ) -> None:
        self.user, self.view, self.on_done = user, view, on_done
        counts = {r.name: r.count for r in view.roles}
        first = view.roles[0].name if view.roles else None
        with ui.dialog() as self.dialog, ui.card().classes("w-96"):
            ui.label(f"Scale a role of {view.name}").classes("text-h6")
            self.role = tag(
                ui.select(sorted(counts), label="Role", value=first), "scale-role"
            ).classes("w-full")
            self.count = tag(
                ui.number(
                    "Replicas",
                    value=counts.get(first or "", 1),
                    min=0,
                    max=MAX_REPLICAS,
                    precision=0,
                ),
                "scale-count",
            ).classes("w-full")
            self.role.on_value_change(lambda e: self.count.set_value(counts.get(e.value, 1)))
            self.error = tag(ui.label("").classes("text-negative"), "scale-error")
            self.error.props('role="alert"')
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                tag(ui.button("Scale", on_click=self.scale), "scale-submit")

    def open(self) -> None:
        self.dialog.open()

    async def scale(self) -> None:
        self.error.text = ""
        self.role.error = self.count.error = None
        role = self.role.value
        if not role:
            self.role.error = "Choose a role."
            return
        if self.count.value is None:
            self.count.error = f"A replica count from 0 to {MAX_REPLICAS}."
            return
        count = int(self.count.value)
        try:
            path = service_path(self.view.name, "roles", quote(role, safe=""), "scale")
            await self.user.post(path, {"count": count})
        except ApiError as err:
            if err.field == "count":
                self.count.error = err.text
            else:
                self.error.text = err.text
            return
        self.dialog.close()
        ui.notify(f"Scaling {self.view.name} {role} to {count}", type="positive")
        await self.on_done()


async def remove(user: UserApi, view: ServiceView, on_done: Callable[[], Awaitable[None]]) -> None:
    """Asks, typing the name, then removes the service (roles in reverse start order)."""
    vms = sum(len(r.replicas) for r in view.roles)
    if not await confirm(
        f"Remove service {view.name}?",
        f"Its {vms} VM(s) and their disks are removed for good, roles in reverse start "
        "order; what the service serves stops.",
        "Remove",
        type_to_confirm=view.name,
    ):
        return
    try:
        await user.delete(service_path(view.name))
    except ApiError as err:
        ui.notify(f"Removing {view.name} failed: {err.text}", type="negative", multi_line=True)
        return
    ui.notify(f"Removing service {view.name}", type="positive")
    await on_done()
