"""The create wizard: an appliance from the catalog, its spec, then create (and start).

The appliance validates; a refusal that names a field is shown at that field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement

from ui.api import ApiError
from ui.pages.common import tag
from ui.session import UserApi

ROLES = ("other", "b2b", "vran", "upf")


def field_of(err: ApiError) -> str | None:
    """The wizard input a problem points at: "vcpus", "name", "spec.memory_mib" -> memory_mib."""
    name = err.field
    if name is None:
        errors = err.problem.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            name = str(errors[0].get("key") or "") or None
    if name is None:
        return None
    return name.removeprefix("spec.").split(".")[0].split("[")[0]


class CreateWizard:
    def __init__(
        self,
        user: UserApi,
        catalog: list[dict[str, Any]],
        tenants: list[str],
        on_created: Callable[[str], Awaitable[None]],
    ) -> None:
        self.user = user
        self.catalog = {entry["name"]: entry for entry in catalog}
        self.on_created = on_created
        with ui.dialog() as self.dialog, ui.card().classes("w-[40rem] max-w-full"):
            ui.label("Create a VM").classes("text-h6")
            with ui.stepper().props("vertical").classes("w-full") as self.stepper:
                with ui.step("Appliance"):
                    options = {
                        name: f"{name} — {entry.get('role')}"
                        + (
                            ""
                            if (entry.get("image_status") or {}).get("present")
                            else " (image missing)"
                        )
                        for name, entry in self.catalog.items()
                    }
                    self.appliance = tag(
                        ui.select(options, label="Appliance", on_change=self._appliance_chosen),
                        "create-appliance",
                    ).classes("w-full")
                    self.description = ui.label("").classes("text-grey-8 text-sm")
                    with ui.stepper_navigation():
                        tag(ui.button("Next", on_click=self._to_spec), "create-next")
                with ui.step("Spec"):
                    self.name = tag(ui.input("Name", placeholder="e.g. llm-1"), "create-name")
                    self.vcpus = tag(ui.number("vCPUs", min=1, precision=0), "create-vcpus")
                    self.memory = tag(
                        ui.number("Memory (MiB)", min=16, precision=0), "create-memory"
                    )
                    self.tenant = tag(
                        ui.select(
                            {"": "none", **{t: t for t in tenants}}, label="Tenant", value=""
                        ),
                        "create-tenant",
                    )
                    self.role = tag(
                        ui.select(list(ROLES), label="Role", value="other"), "create-role"
                    )
                    self.start = tag(ui.switch("Start after creating", value=True), "create-start")
                    with ui.stepper_navigation():
                        ui.button("Back", on_click=self.stepper.previous).props("flat")
                        tag(ui.button("Create", on_click=self.create), "create-submit")
            self.error = tag(ui.label("").classes("text-negative"), "create-error")
            self.error.props('role="alert"')
            ui.button("Cancel", on_click=self.dialog.close).props("flat")
        for element in (self.name, self.vcpus, self.memory, self.tenant, self.role):
            # Full width: the appliance's messages are a sentence long.
            element.classes("w-full")
        self._inputs: dict[str, ValidationElement[Any]] = {
            "name": self.name,
            "vcpus": self.vcpus,
            "memory_mib": self.memory,
            "tenant": self.tenant,
            "role": self.role,
        }

    def open(self) -> None:
        self.dialog.open()

    def _appliance_chosen(self) -> None:
        entry = self.catalog.get(self.appliance.value or "")
        if entry is None:
            return
        spec = entry.get("default_spec") or {}
        self.description.text = str(entry.get("description", ""))
        self.vcpus.value = spec.get("vcpus")
        self.memory.value = spec.get("memory_mib")
        self.role.value = entry.get("role") if entry.get("role") in ROLES else "other"

    def _to_spec(self) -> None:
        if not self.appliance.value:
            self.appliance.error = "Choose an appliance from the catalog."
            return
        self.appliance.error = None
        self.stepper.next()

    def body(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"role": self.role.value}
        if self.vcpus.value is not None:
            spec["vcpus"] = int(self.vcpus.value)
        if self.memory.value is not None:
            spec["memory_mib"] = int(self.memory.value)
        if self.tenant.value:
            spec["tenant"] = self.tenant.value
        return {
            "name": (self.name.value or "").strip(),
            "appliance": self.appliance.value,
            "spec": spec,
            "start": bool(self.start.value),
        }

    async def create(self) -> None:
        for element in self._inputs.values():
            element.error = None
        self.error.text = ""
        body = self.body()
        progress = ui.notification(f"Creating {body['name']}…", spinner=True, timeout=None)
        try:
            await self.user.post("/api/v1/vms", json=body)
        except ApiError as err:
            target = self._inputs.get(field_of(err) or "")
            if target is not None:
                target.error = err.text
            else:
                self.error.text = err.text
            return
        finally:
            progress.dismiss()
        self.dialog.close()
        state = "created and started" if body["start"] else "created"
        ui.notify(f"VM {body['name']} {state}", type="positive")
        await self.on_created(body["name"])
