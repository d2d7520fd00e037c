"""A rolling update of one role, from its service's card: a new catalog entry (or the
new version the catalog has of its entry) or new values, replicas replaced one at a
time with the role's health check gating each step. The form holds the role's values
as set now (a secret only said to be set); what is changed is sent, and a value left
empty keeps its setting (the request merges). "Plan" shows the steps the update
would take without changing anything; "Update" starts it, and the card follows its
progress.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nicegui import ui

from towerbox_core.api.services import MAX_REPLICAS, RoleView, RolloutPlan, ServiceView
from towerbox_core.rollout_plan import plan_in_words
from ui.api import ApiError, service_path
from ui.handles import tag
from ui.session import UserApi
from ui.value_fields import ValueFields
from ui.vm_offer import non_empty


def update_body(
    role: RoleView,
    entry: str,
    values: dict[str, Any],
    surge: int,
    unavailable: int,
    version: str | None = None,
) -> dict[str, Any]:
    """The POST /api/v1/services/<name>/update body: only what changes is named, and
    the entry version the dialog showed (the node refuses if its catalog moved on)."""
    body: dict[str, Any] = {"role": role.name, "max_surge": surge, "max_unavailable": unavailable}
    if entry != role.catalog:
        body["catalog"] = entry
    if version is not None:
        body["version"] = version
    given = non_empty(values)
    if given:
        body["values"] = given
        body["merge_values"] = True
    return body


def version_note(role: RoleView | None, entry: dict[str, Any]) -> str:
    """What the update does to the role's entry version, in words ("" for no role)."""
    if role is None or not entry:
        return ""
    was = f"{role.catalog} v{role.version}" if role.version else role.catalog
    now = f"{entry['name']} v{entry['version']}"
    if was == now or (role.version is None and entry["name"] == role.catalog):
        return f"Runs {was}, as the catalog has it."
    return f"Runs {was}; the update moves it to {now}, even with nothing else changed."


class UpdateDialog:
    """Refusals (nothing to update, a value the entry refuses, a quota for the surge
    replica) are shown in the dialog, which stays open with what was typed."""

    def __init__(
        self,
        user: UserApi,
        view: ServiceView,
        catalog: list[dict[str, Any]],
        on_done: Callable[[], Awaitable[None]],
    ) -> None:
        self.user, self.view, self.on_done = user, view, on_done
        self.roles = {r.name: r for r in view.roles}
        self.catalog = {e["name"]: e for e in catalog}
        first = view.roles[0] if view.roles else None
        with ui.dialog() as self.dialog, ui.card().classes("w-[36rem] max-w-full"):
            ui.label(f"Update a role of {view.name}").classes("text-h6")
            ui.label(
                "Replicas are replaced one at a time: each new one passes the role's "
                "health check before an old one goes; a failed one rolls the role back."
            ).classes("text-sm text-grey-8")
            self.role = tag(
                ui.select(
                    sorted(self.roles),
                    label="Role",
                    value=first.name if first else None,
                    on_change=self._role_chosen,
                ),
                "update-role",
            ).classes("w-full")
            self.entry = tag(
                ui.select(
                    sorted(self.catalog),
                    label="Catalog entry",
                    value=first.catalog if first and first.catalog in self.catalog else None,
                    on_change=self._entry_chosen,
                ),
                "update-catalog",
            ).classes("w-full")
            self.version_note = tag(ui.label("").classes("text-sm"), "update-version")
            self.value_fields = ValueFields("update-value")
            ui.label("A value left empty keeps its setting.").classes("text-xs text-grey-7")
            with ui.row().classes("w-full no-wrap"):
                self.surge = tag(
                    ui.number("Max surge", value=1, min=0, max=MAX_REPLICAS, precision=0),
                    "update-surge",
                ).classes("w-1/2")
                self.unavailable = tag(
                    ui.number("Max unavailable", value=0, min=0, max=MAX_REPLICAS, precision=0),
                    "update-unavailable",
                ).classes("w-1/2")
            self.plan = tag(ui.column().classes("w-full gap-0"), "update-plan")
            # A plan shown for other counts is not this one's.
            self.surge.on_value_change(self.plan.clear)
            self.unavailable.on_value_change(self.plan.clear)
            self.error = tag(ui.label("").classes("text-negative"), "update-error")
            self.error.props('role="alert"')
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                tag(ui.button("Plan", on_click=self.dry_run).props("outline"), "update-dry-run")
                tag(ui.button("Update", on_click=self.update), "update-submit")
        self._entry_chosen()

    def open(self) -> None:
        self.dialog.open()

    def _role_chosen(self) -> None:
        role = self.roles.get(self.role.value or "")
        if role is not None:
            # An entry no longer in the catalog is not offered: one must be chosen.
            self.entry.set_value(role.catalog if role.catalog in self.catalog else None)
        self._entry_chosen()

    def _entry_chosen(self) -> None:
        role = self.roles.get(self.role.value or "")
        entry = self.catalog.get(self.entry.value or "") or {}
        self.version_note.text = version_note(role, entry)
        self.value_fields.draw(entry.get("values") or {}, role.values if role else {})
        self.plan.clear()

    async def dry_run(self) -> None:
        answer = await self._send(dry_run=True)
        if answer is None:
            return
        try:
            plan = msgspec.convert(answer["plan"], RolloutPlan)
        except (KeyError, TypeError, msgspec.ValidationError) as err:
            self.error.text = f"The appliance answered something unexpected: {err}"
            return
        self.plan.clear()
        with self.plan:
            ui.label("Plan (nothing changed yet)").classes("text-subtitle2")
            for line in plan_in_words(plan):
                ui.label(line).classes("text-sm font-mono")

    async def update(self) -> None:
        if await self._send(dry_run=False) is None:
            return
        self.dialog.close()
        ui.notify(f"Updating {self.view.name} {self.role.value}", type="positive")
        await self.on_done()

    async def _send(self, *, dry_run: bool) -> Any:
        """The request's answer; None when it was refused (said in the dialog)."""
        self.error.text = ""
        self.role.error = self.entry.error = self.surge.error = self.unavailable.error = None
        self.value_fields.clear_errors()
        role = self.roles.get(self.role.value or "")
        if role is None:
            self.role.error = "Choose a role."
            return None
        if not self.entry.value:
            self.entry.error = "Choose a catalog entry."
            return None
        surge, unavailable = self.surge.value, self.unavailable.value
        if surge is None or unavailable is None:
            self.error.text = f"Surge and unavailable are counts from 0 to {MAX_REPLICAS}."
            return None
        shown = self.catalog.get(self.entry.value) or {}
        body = update_body(
            role,
            self.entry.value,
            self.value_fields.values(),
            int(surge),
            int(unavailable),
            shown.get("version"),
        )
        try:
            return await self.user.post(
                service_path(self.view.name, "update"), {**body, "dry_run": dry_run}
            )
        except ApiError as err:
            self._show(err)
            return None

    def _show(self, err: ApiError) -> None:
        target = self.value_fields.input_for(err.field)
        if target is not None:
            target.error = err.text
        elif err.field == "max_surge":
            self.surge.error = err.text
        elif err.field == "max_unavailable":
            self.unavailable.error = err.text
        elif err.field in ("catalog", "version"):
            self.entry.error = err.text
        else:
            self.error.text = err.text
