"""Deploy from the catalog: a service of one role made from a catalog entry, with a
form generated from the entry's declared values. The defaults deploy with one click:
choose the appliance, press Deploy (the name is the entry's, one replica, each value
its default). Templates with several roles are deployed with `towerbox service
deploy --template`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from towerbox_core.api.services import SINGLE_ROLE
from ui.api import ApiError
from ui.handles import tag
from ui.session import UserApi
from ui.value_fields import ValueFields
from ui.vm_offer import Offer, non_empty


def deploy_body(
    name: str, entry: str, tenant: str, count: int, values: dict[str, Any]
) -> dict[str, Any]:
    """The POST /api/v1/services body for a one-role service of ``entry``."""
    role: dict[str, Any] = {"name": SINGLE_ROLE, "catalog": entry, "count": count}
    given = non_empty(values)
    if given:
        role["values"] = given
    body: dict[str, Any] = {"service": {"name": name.strip() or entry, "roles": [role]}}
    if tenant:
        body["tenant"] = tenant
    return body


class DeployDialog:
    def __init__(
        self,
        user: UserApi,
        catalog: list[dict[str, Any]],
        offer: Offer,
        on_deployed: Callable[[], Awaitable[None]],
    ) -> None:
        self.user = user
        self.catalog = {e["name"]: e for e in catalog}
        self.on_deployed = on_deployed
        with ui.dialog() as self.dialog, ui.card().classes("w-[36rem] max-w-full"):
            ui.label("Deploy from the catalog").classes("text-h6")
            self.entry = tag(
                ui.select(sorted(self.catalog), label="Appliance", on_change=self._chosen),
                "deploy-appliance",
            ).classes("w-full")
            self.description = ui.label("").classes("text-grey-8 text-sm")
            self.name = tag(
                ui.input("Service name", placeholder="default: the appliance's name"),
                "deploy-name",
            ).classes("w-full")
            tenants = {t: t for t in offer.tenants}
            self.tenant = tag(
                ui.select(tenants, label="Tenant", value=next(iter(tenants), None)),
                "deploy-tenant",
            ).classes("w-full")
            self.tenant.set_enabled(not offer.tenant_fixed)
            self.count = tag(
                ui.number("Replicas", value=1, min=1, max=32, precision=0), "deploy-count"
            ).classes("w-full")
            self.value_fields = ValueFields("deploy-value")
            self.error = tag(ui.label("").classes("text-negative"), "deploy-error")
            self.error.props('role="alert"')
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                tag(ui.button("Deploy", on_click=self.deploy), "deploy-submit")

    def open(self) -> None:
        self.dialog.open()

    def _chosen(self) -> None:
        entry = self.catalog.get(self.entry.value or "") or {}
        self.description.text = str(entry.get("description", ""))
        self.value_fields.draw(entry.get("values") or {})

    async def deploy(self) -> None:
        self.error.text = ""
        self.entry.error = None
        self.value_fields.clear_errors()
        if not self.entry.value:
            self.entry.error = "Choose an appliance from the catalog."
            return
        body = deploy_body(
            self.name.value or "",
            self.entry.value,
            self.tenant.value or "",
            int(self.count.value or 1),
            self.value_fields.values(),
        )
        try:
            await self.user.post("/api/v1/services", json=body)
        except ApiError as err:
            # What was typed stays; a refused value is shown at its input.
            target = self.value_fields.input_for(err.field)
            if target is not None:
                target.error = err.text
            else:
                self.error.text = err.text
            return
        self.dialog.close()
        ui.notify(f"Deploying service {body['service']['name']}", type="positive")
        await self.on_deployed()
