"""The N6 page's dialogs: declare or edit a trunk, declare or edit a tenant VNet.

What they save is the declaration only; the node changes at the next Apply, so each
saved change says so. The appliance validates (VLAN range, gateway inside the subnet,
overlaps, the datapath this host runs); a refusal is shown at the input it names and
what was typed stays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement

from ui.api import ApiError
from ui.form_errors import clear_errors, show_refusal
from ui.handles import tag
from ui.pages.tenant_edit import parse_list
from ui.session import UserApi

E = TypeVar("E", bound=ValidationElement[Any])

TRUNKS = "/api/v1/n6/trunks"
VNETS = "/api/v1/n6/vnets"
NOT_APPLIED = "declared; the node changes when you Apply (Plan shows what changes)"
DATAPATHS = {
    "auto": "auto (what this host runs)",
    "system": "system (kernel)",
    "netdev": "netdev (userspace)",
}
# Refusals about the whole declaration name no field; these are about one input.
VNET_CODES = {
    "vlan_taken": "vlan",
    "vnet_in_use": "vlan",
    "subnet_overlap": "subnet",
    "ue_pool_overlap": "ue_pools",
    "vnet_exists": "name",
    "duplicate_vnet": "name",
    "derived_name_collision": "name",
    "vnet_rename": "name",
}
TRUNK_CODES = {"duplicate_trunk_port": "ports", "trunk_block_collision": "name"}


def trunk_path(name: str) -> str:
    return f"{TRUNKS}/{quote(name, safe='')}"


def vnet_path(tenant: str, name: str) -> str:
    return f"{VNETS}/{quote(tenant, safe='')}/{quote(name, safe='')}"


def list_text(values: list[str] | None) -> str:
    return ", ".join(values or [])


def whole(value: Any) -> Any:
    """A number box's value as sent: 100.0 -> 100, anything else as typed (the
    appliance says what is wrong with it)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class DeclarationDialog:
    """One dialog: its inputs by the field names the API uses, Save, the refusal."""

    marker = ""
    prefix = ""  # the wrapper the appliance puts before field names, if any
    codes: ClassVar[Mapping[str, str]] = {}

    def __init__(self, user: UserApi, on_saved: Callable[[], Awaitable[None]]) -> None:
        self.user = user
        self.on_saved = on_saved
        self.inputs: dict[str, ValidationElement[Any]] = {}
        self.dialog = ui.dialog()
        with self.dialog, ui.card().classes("w-[36rem] max-w-full"):
            self.fields()
            for element in self.inputs.values():
                element.classes("w-full")  # the appliance's messages are a sentence long
            self.error = tag(ui.label("").classes("text-negative"), f"{self.marker}-error")
            self.error.props('role="alert"')
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.dismiss).props("flat")
                tag(ui.button("Save", on_click=self.save), f"{self.marker}-save")

    def fields(self) -> None:
        raise NotImplementedError

    def field(self, key: str, element: E) -> E:
        self.inputs[key] = tag(element, f"{self.marker}-{key}")
        return element

    async def send(self) -> str:
        """Make the call; the name of what was saved, for the notice."""
        raise NotImplementedError

    def open(self) -> None:
        self.dialog.open()

    def dismiss(self) -> None:
        # Gone, not only hidden: the next dialog's inputs are the only ones on the page.
        self.dialog.close()
        self.dialog.delete()

    async def save(self) -> None:
        clear_errors(self.inputs, self.error)
        try:
            saved = await self.send()
        except ApiError as err:
            show_refusal(err, self.inputs, self.error, self.prefix, self.codes)
            return
        self.dialog.close()
        ui.notify(f"{saved} {NOT_APPLIED}", type="positive", multi_line=True)
        await self.on_saved()
        # Last: this handler runs in the dialog, and a deleted slot takes no more output.
        self.dialog.delete()


class TrunkDialog(DeclarationDialog):
    """A trunk: an OVS bridge with its ports and datapath, or a Linux NIC."""

    marker = "n6-trunk"
    codes = TRUNK_CODES
    prefix = "trunk."  # the appliance names trunk fields "trunk.ports"

    def __init__(
        self,
        user: UserApi,
        on_saved: Callable[[], Awaitable[None]],
        current: dict[str, Any] | None = None,
        auto_is: str | None = None,
    ) -> None:
        self.current = current or {}
        self.auto_is = auto_is
        super().__init__(user, on_saved)

    def fields(self) -> None:
        t = self.current
        editing = bool(t)
        ui.label(f"Edit trunk {t['name']}" if editing else "New N6 trunk").classes("text-h6")
        self.name = self.field("name", ui.input("Name", value=t.get("name", "")))
        self.name.set_enabled(not editing)  # a new name is a new trunk
        self.name.props["hint"] = "the OVS bridge, or for kind linux the N6 NIC itself"
        self.kind = self.field(
            "kind",
            ui.select(
                {"ovs": "Open vSwitch bridge", "linux": "Linux NIC"},
                label="Kind",
                value=t.get("kind", "ovs"),
            ),
        )
        self.ports = self.field(
            "ports", ui.input("Ports (comma-separated)", value=list_text(t.get("ports")))
        )
        self.ports.props["hint"] = "the N6 uplink NIC and the UPF's port, e.g. ens2f0"
        self.datapath = self.field(
            "datapath_type",
            ui.select(DATAPATHS, label="Datapath", value=t.get("datapath_type", "auto")),
        )
        if self.auto_is:
            self.datapath.props["hint"] = f"auto picks {self.auto_is} on this host"
        for element in (self.ports, self.datapath):
            element.bind_visibility_from(self.kind, "value", lambda kind: kind == "ovs")

    def body(self) -> dict[str, Any]:
        """The whole trunk (a PUT replaces it); a Linux NIC has no ports or datapath, and
        those inputs are hidden for it, so nothing typed there is sent."""
        if self.kind.value != "ovs":
            return {"kind": self.kind.value}
        return {
            "kind": "ovs",
            "ports": parse_list(self.ports.value or ""),
            "datapath_type": self.datapath.value or "auto",
        }

    async def send(self) -> str:
        name = (self.name.value or "").strip()
        if not name:
            raise ApiError(
                422, "invalid_name", "Give the trunk a name, e.g. br-n6", {"field": "name"}
            )
        await self.user.call("PUT", trunk_path(name), json=self.body())
        return f"Trunk {name}"


class VnetDialog(DeclarationDialog):
    """A tenant VNet: its VLAN on a trunk, subnet and gateway, DNNs and UE pools."""

    marker = "n6-vnet"
    codes = VNET_CODES
    prefix = "vnet."

    def __init__(
        self,
        user: UserApi,
        on_saved: Callable[[], Awaitable[None]],
        tenants: list[str],
        trunks: list[str],
        current: dict[str, Any] | None = None,
    ) -> None:
        self.tenants = tenants
        self.trunks = trunks
        self.current = current or {}
        super().__init__(user, on_saved)

    def fields(self) -> None:
        v = self.current
        editing = bool(v)
        title = f"Edit VNet {v['tenant']}/{v['name']}" if editing else "New tenant VNet"
        ui.label(title).classes("text-h6")
        tenant = v.get("tenant") or (self.tenants[0] if self.tenants else None)
        self.tenant = self.field("tenant", ui.select(self.tenants, label="Tenant", value=tenant))
        self.name = self.field("name", ui.input("Name", value=v.get("name", "")))
        # Tenant and name are the VNet's identity: another one is a new VNet.
        self.tenant.set_enabled(not editing)
        self.name.set_enabled(not editing)
        trunk = v.get("trunk") or (self.trunks[0] if self.trunks else None)
        self.field("trunk", ui.select(self.trunks, label="Trunk", value=trunk))
        self.field("vlan", ui.number("VLAN id", value=v.get("vlan"), precision=0))
        self.inputs["vlan"].props["hint"] = "1 to 4094, one tenant's VNet per VLAN on a trunk"
        self.field(
            "subnet",
            ui.input("Subnet", value=v.get("subnet", ""), placeholder="e.g. 10.100.0.0/24"),
        )
        self.field(
            "gateway",
            ui.input("Gateway", value=v.get("gateway", ""), placeholder="e.g. 10.100.0.1"),
        )
        self.field("dnns", ui.input("DNNs (comma-separated)", value=list_text(v.get("dnns"))))
        self.field(
            "ue_pools",
            ui.input(
                "UE pools (comma-separated)",
                value=list_text(v.get("ue_pools")),
                placeholder="e.g. 10.45.0.0/16",
            ),
        )

    def body(self) -> dict[str, Any]:
        """The fields the dialog edits; on an edit the appliance keeps the others."""
        i = self.inputs
        return {
            "trunk": i["trunk"].value,
            "vlan": whole(i["vlan"].value),
            "subnet": (i["subnet"].value or "").strip(),
            "gateway": (i["gateway"].value or "").strip(),
            "dnns": parse_list(i["dnns"].value or ""),
            "ue_pools": parse_list(i["ue_pools"].value or ""),
        }

    async def send(self) -> str:
        if self.current:
            tenant, name = self.current["tenant"], self.current["name"]
            await self.user.call("PATCH", vnet_path(tenant, name), json=self.body())
        else:
            tenant, name = self.tenant.value or "", (self.name.value or "").strip()
            await self.user.post(VNETS, json={"tenant": tenant, "name": name, **self.body()})
        return f"VNet {tenant}/{name}"
