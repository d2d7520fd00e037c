"""The create wizard: an appliance from the catalog, its spec, then create (and start).

It offers what the user may ask for (ui.vm_offer), checks obviously bad input itself,
and leaves the rest to the appliance; a refusal that names a field is shown at that
field, and what was typed stays.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement

from ui.api import ApiError
from ui.pages.common import tag
from ui.session import UserApi
from ui.value_fields import ValueFields
from ui.vm_offer import (
    Offer,
    WizardInput,
    catalog_disks,
    create_body,
    problems,
)


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
        offer: Offer,
        on_created: Callable[[str], Awaitable[None]],
    ) -> None:
        self.user = user
        self.catalog = {entry["name"]: entry for entry in catalog}
        self.offer = offer
        self.on_created = on_created
        with ui.dialog() as self.dialog, ui.card().classes("w-[40rem] max-w-full"):
            ui.label("Create a VM").classes("text-h6")
            with ui.stepper().props("vertical").classes("w-full") as self.stepper:
                with ui.step("Appliance"):
                    self.appliance = tag(
                        ui.select(
                            {n: _entry_label(e) for n, e in self.catalog.items()},
                            label="Appliance",
                            on_change=self._appliance_chosen,
                        ),
                        "create-appliance",
                    ).classes("w-full")
                    self.description = ui.label("").classes("text-grey-8 text-sm")
                    with ui.stepper_navigation():
                        tag(ui.button("Next", on_click=self._to_spec), "create-next")
                with ui.step("Spec"):
                    self._spec_fields()
                    with ui.stepper_navigation():
                        ui.button("Back", on_click=self.stepper.previous).props("flat")
                        tag(ui.button("Create", on_click=self.create), "create-submit")
            self.error = tag(ui.label("").classes("text-negative"), "create-error")
            self.error.props('role="alert"')
            ui.button("Cancel", on_click=self.dialog.close).props("flat")
        self._inputs: dict[str, ValidationElement[Any]] = {
            "name": self.name,
            "vcpus": self.vcpus,
            "memory_mib": self.memory,
            "tenant": self.tenant,
            "role": self.role,
            "hugepages": self.hugepages,
            "numa_node": self.numa,
            "gpu": self.gpu,
            "nics": self.vnet,
            "pci_devices": self.pci,
            "disks": self.disk,
            "cpu": self.cpu_hint,
        }
        for element in self._inputs.values():
            # Full width: the appliance's messages are a sentence long.
            element.classes("w-full")
        for key, text in self.offer.capacity.hints.items():
            target = self._inputs.get(key)
            if target is not None:
                target.props["hint"] = text  # under the field until an error takes its place

    def _spec_fields(self) -> None:
        offer = self.offer
        host = offer.host
        self.name = tag(ui.input("Name", placeholder="e.g. llm-1"), "create-name")
        self.vcpus = tag(
            ui.number("vCPUs", min=1, max=host.threads if host else None, precision=0),
            "create-vcpus",
        )
        self.memory = tag(ui.number("Memory (MiB)", min=16, precision=0), "create-memory")
        if offer.tenant_fixed:
            tenants = {t: t for t in offer.tenants}
        else:
            tenants = {"": "none", **{t: t for t in offer.tenants}}
        self.tenant = tag(
            ui.select(tenants, label="Tenant", value=next(iter(tenants)), on_change=self._vnets),
            "create-tenant",
        )
        self.tenant.set_enabled(not offer.tenant_fixed)
        role = "other" if "other" in offer.roles else offer.roles[0]
        self.role = tag(ui.select(offer.roles, label="Role", value=role), "create-role")
        self.pinned = tag(ui.switch("Pinned cores"), "create-pinned")
        self.isolated = tag(ui.switch("Isolated emulator threads"), "create-isolated")
        self.pinned.set_visibility(offer.pinned)
        self.isolated.set_visibility(offer.isolated)
        # Where the free cores are said, and a refusal about the CPU policy lands.
        self.cpu_hint = tag(ui.input("CPU placement").props("readonly borderless"), "create-cpu")
        self.cpu_hint.value = "pinned" if offer.pinned else "shared"
        self.cpu_hint.bind_value_from(self.pinned, "value", lambda on: "pinned" if on else "shared")
        self.cpu_hint.set_visibility(offer.pinned)
        sizes = {"none": "none", **{s: s for s in offer.hugepages}}
        self.hugepages = tag(ui.select(sizes, label="Hugepages", value="none"), "create-hugepages")
        self.hugepages.set_visibility(bool(offer.hugepages))
        nodes: dict[Any, str] = {None: "any", **{n: f"node {n}" for n in offer.numa_nodes}}
        self.numa = tag(ui.select(nodes, label="NUMA node", value=None), "create-numa")
        self.numa.set_visibility(bool(offer.numa_nodes))
        self.gpu = tag(
            ui.select(gpu_options(offer), label="GPU slice (MIG)", value=""), "create-gpu"
        )
        self.vnet = tag(ui.select({"": "none"}, label="NIC on VNet", value=""), "create-vnet")
        self._vnets()
        pfs = {"": "none", **{pf: f"a VF of {pf}" for pf in offer.capacity.sriov_pfs}}
        self.sriov = tag(ui.select(pfs, label="SR-IOV NIC", value=""), "create-sriov")
        self.sriov.set_visibility(bool(offer.capacity.sriov_pfs))
        self.pci = tag(
            ui.select(
                offer.capacity.pci_devices, label="PCI devices (whole)", multiple=True, value=[]
            ),
            "create-pci",
        )
        self.pci.set_visibility(bool(offer.capacity.pci_devices))
        self.disk = tag(ui.number("Extra data disk (GiB)", min=1, precision=0), "create-disk")
        # The values the chosen appliance declares (its cloud-init template's), drawn
        # when it is chosen; left empty, the entry's default applies.
        self.value_fields = ValueFields("create-value")
        self.start = tag(ui.switch("Start after creating", value=True), "create-start")
        with ui.expansion("Advanced: the request as JSON").classes("w-full"):
            ui.label(
                "The same request the form sends, to edit before sending: any VM spec "
                "field the API takes (several NICs, disks, a PCI device list)."
            ).classes("text-sm text-grey-8")
            self.json = tag(
                ui.textarea("Request (JSON)").classes("w-full font-mono"), "create-json"
            )
            with ui.row():
                tag(ui.button("Copy from the form", on_click=self._fill_json), "create-json-fill")
                self.use_json = tag(ui.switch("Send this JSON instead"), "create-json-use")

    def _vnets(self) -> None:
        names = self.offer.vnets.get(self.tenant.value or "", [])
        self.vnet.set_options({"": "none", **{n: n for n in names}}, value="")

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
        self.value_fields.draw(entry.get("values") or {})
        if entry.get("role") in self.offer.roles:
            self.role.value = entry.get("role")

    def _to_spec(self) -> None:
        if not self.appliance.value:
            self.appliance.error = "Choose an appliance from the catalog."
            return
        self.appliance.error = None
        self.stepper.next()

    def form(self) -> WizardInput:
        entry = self.catalog.get(self.appliance.value or "") or {}
        return WizardInput(
            name=self.name.value or "",
            appliance=self.appliance.value,
            vcpus=self.vcpus.value,
            memory_mib=self.memory.value,
            tenant=self.tenant.value or "",
            role=self.role.value or "other",
            pinned=bool(self.pinned.value),
            isolated=bool(self.isolated.value),
            hugepages=self.hugepages.value or "none",
            numa_node=self.numa.value,
            gpu_profile=self.gpu.value or "",
            vnet=self.vnet.value or "",
            sriov_pf=self.sriov.value or "",
            pci_devices=list(self.pci.value or []),
            disk_gib=self.disk.value,
            start=bool(self.start.value),
            catalog_disks=catalog_disks(entry),
            values=self.value_fields.values(),
        )

    def body(self) -> dict[str, Any]:
        return create_body(self.form())

    def _fill_json(self) -> None:
        self.json.value = json.dumps(self.body(), indent=2)

    def _json_body(self) -> dict[str, Any] | None:
        """The advanced view's request; None (with the error at it) when it is no object."""
        try:
            body = json.loads(self.json.value or "")
        except json.JSONDecodeError as err:
            self.json.error = f"Not JSON: {err.msg} at line {err.lineno} [invalid_json]"
            return None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            self.json.error = 'A JSON object with at least a "name" [invalid_json]'
            return None
        return body

    async def create(self) -> None:
        for element in self._inputs.values():
            element.error = None
        self.value_fields.clear_errors()
        self.json.error = None
        self.error.text = ""
        if self.use_json.value:
            sent = self._json_body()
            if sent is None:
                return
            body = sent
        else:
            form = self.form()
            found = problems(form, self.offer)
            if found:
                for key, text in found.items():
                    target = self._inputs.get(key)
                    if target is not None:
                        target.error = text
                    else:
                        self.error.text = text
                return
            body = create_body(form)
        progress = ui.notification(f"Creating {body['name']}…", spinner=True, timeout=None)
        try:
            await self.user.post("/api/v1/vms", json=body)
        except ApiError as err:
            # The form keeps what was typed; the problem goes to its field, or below.
            target = self._inputs.get(field_of(err) or "") or self.value_fields.input_for(err.field)
            if target is not None:
                target.error = err.text
            else:
                self.error.text = err.text
            return
        finally:
            progress.dismiss()
        self.dialog.close()
        state = "created and started" if body.get("start", True) else "created"
        ui.notify(f"VM {body['name']} {state}", type="positive")
        await self.on_created(body["name"])


def gpu_options(offer: Offer) -> dict[str, str]:
    """MIG profiles with what is free of each now; the vRAN slice where vRAN is offered."""
    free = offer.capacity.gpu_free
    counted = offer.capacity.gpus_seen
    options = {"": "none"}
    for profile in offer.gpu_profiles:
        options[profile] = f"{profile} ({free.get(profile, 0)} free now)" if counted else profile
    if "vran" in offer.roles and offer.gpu_profiles:
        options["role:vran"] = "the protected vRAN slice"
    return options


def _entry_label(entry: dict[str, Any]) -> str:
    present = (entry.get("image_status") or {}).get("present")
    return f"{entry['name']} — {entry.get('role')}" + ("" if present else " (image missing)")
