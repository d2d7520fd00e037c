"""The editor of one tenant's quotas and grants (infra-admin), and its text parsing.

Maps are typed as "key=count, key=count". The API merges maps key by key, so a key
the operator deleted from the text is sent as 0, which removes it there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nicegui import ui

from towerbox_core.api.tenants import Grants, GrantsUpdate, Quotas, QuotasUpdate, TenantDetail
from ui.api import ApiError, tenant_path
from ui.handles import tag
from ui.session import UserApi

# (field, label) of the quotas typed as one number each; -1 is unlimited.
QUOTA_NUMBERS = (
    ("vms", "VMs"),
    ("vcpus", "vCPUs"),
    ("memory_mib", "Memory (MiB)"),
    ("disk_gib", "Disk (GiB)"),
    ("gpu_compute_slices", "GPU compute slices"),
    ("whole_gpus", "Whole GPUs"),
    ("vnets", "VNets"),
    ("process_claims", "Process GPU claims"),
)


def map_text(values: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))


def parse_map(text: str, what: str) -> dict[str, int]:
    """ "1g.10gb=2, 3g.40gb=1" -> {"1g.10gb": 2, "3g.40gb": 1}; ValueError names the part."""
    result: dict[str, int] = {}
    for part in parse_list(text):
        key, sep, count = part.partition("=")
        key = key.strip()
        try:
            value = int(count.strip())
        except ValueError:
            value = None
        if not sep or not key or value is None:
            raise ValueError(f"{what}: {part!r} is not key=count")
        if key in result:
            raise ValueError(f"{what}: {key} is given twice")
        result[key] = value
    return result


def map_update(old: dict[str, int], new: dict[str, int]) -> dict[str, int]:
    """The merge body that turns ``old`` into ``new``: removed keys are sent as 0."""
    return {**{k: 0 for k in old if k not in new}, **new}


def parse_list(text: str) -> list[str]:
    return [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]


def quotas_update(numbers: dict[str, Any], slices_text: str, old: Quotas) -> QuotasUpdate:
    """The PUT body from the form; ValueError when a box is empty or a map does not parse."""
    values: dict[str, Any] = {}
    for key, label in QUOTA_NUMBERS:
        value = numbers.get(key)
        if value is None or value == "":
            raise ValueError(f"{label}: give a number (-1 for unlimited)")
        values[key] = int(value)
    slices = parse_map(slices_text, "MIG slices per profile")
    return QuotasUpdate(**values, gpu_slices=map_update(old.gpu_slices, slices))


def grants_update(
    pinned: Any,
    isolated: bool,
    hugepages_text: str,
    numa: bool,
    sriov_text: str,
    pci_text: str,
    old: Grants,
) -> GrantsUpdate:
    if pinned is None or pinned == "":
        raise ValueError("Pinned cores: give a number (0: no pinning)")
    hugepages = parse_map(hugepages_text, "Hugepages (MiB per size)")
    sriov = parse_map(sriov_text, "SR-IOV PFs (VFs per PF)")
    return GrantsUpdate(
        pinned_cores=int(pinned),
        isolated_cores=bool(isolated),
        hugepages=map_update(old.hugepages, hugepages),
        numa_node_choice=bool(numa),
        sriov_pfs=map_update(old.sriov_pfs, sriov),
        pci_devices=parse_list(pci_text),
    )


class TenantEditor:
    """Quotas and grants of one tenant, each saved on its own; the answer's note shown."""

    def __init__(
        self, user: UserApi, detail: TenantDetail, on_saved: Callable[[], Awaitable[None]]
    ) -> None:
        self.user = user
        self.detail = detail
        self.on_saved = on_saved
        q, g = detail.quotas, detail.grants
        with ui.dialog() as self.dialog, ui.card().classes("w-[44rem] max-w-full"):
            ui.label(f"Tenant {detail.name}").classes("text-h6")
            source = "set for this tenant" if detail.quotas_source == "set" else "node defaults"
            ui.label(f"Quotas ({source}); -1 is unlimited, 0 none.").classes("text-sm text-grey-8")
            self.numbers: dict[str, ui.number] = {}
            with ui.grid(columns=4).classes("w-full"):
                for key, label in QUOTA_NUMBERS:
                    self.numbers[key] = tag(
                        ui.number(label, value=getattr(q, key), min=-1, precision=0),
                        f"quota-{key}",
                    )
            self.slices = tag(
                ui.input("MIG slices per profile", value=map_text(q.gpu_slices)),
                "quota-gpu_slices",
            ).classes("w-full")
            self.slices.props('hint="e.g. 1g.10gb=2, 3g.40gb=1"')
            tag(ui.button("Save quotas", on_click=self.save_quotas), "tenant-save-quotas")
            ui.separator()
            ui.label("Grants").classes("text-subtitle1")
            with ui.grid(columns=3).classes("w-full items-center"):
                self.pinned = tag(
                    ui.number("Pinned cores", value=g.pinned_cores, min=0, precision=0),
                    "grant-pinned_cores",
                )
                self.isolated = tag(
                    ui.switch("Isolated cores", value=g.isolated_cores), "grant-isolated_cores"
                )
                self.numa = tag(
                    ui.switch("NUMA node choice", value=g.numa_node_choice),
                    "grant-numa_node_choice",
                )
            self.hugepages = tag(
                ui.input("Hugepages (MiB per size)", value=map_text(g.hugepages)),
                "grant-hugepages",
            ).classes("w-full")
            self.hugepages.props('hint="e.g. 2M=4096, 1G=8192"')
            self.sriov = tag(
                ui.input("SR-IOV PFs (VFs per PF)", value=map_text(g.sriov_pfs)),
                "grant-sriov_pfs",
            ).classes("w-full")
            self.sriov.props('hint="e.g. ens1f0=4"')
            self.pci = tag(
                ui.input("PCI devices", value=", ".join(g.pci_devices)), "grant-pci_devices"
            ).classes("w-full")
            self.pci.props('hint="e.g. 0000:3b:00.0, 0000:3b:00.1"')
            tag(ui.button("Save grants", on_click=self.save_grants), "tenant-save-grants")
            self.message = tag(ui.label("").classes("text-sm"), "tenant-message")
            self.message.props('role="status" aria-live="polite"')
            ui.button("Close", on_click=self.dialog.close).props("flat")

    def open(self) -> None:
        self.dialog.open()

    def _say(self, text: str, bad: bool) -> None:
        self.message.text = text
        self.message.classes(replace="text-sm " + ("text-negative" if bad else "text-positive"))
        self.message.props(f'role="{"alert" if bad else "status"}"')

    async def save_quotas(self) -> None:
        try:
            body = quotas_update(
                {k: n.value for k, n in self.numbers.items()},
                self.slices.value or "",
                self.detail.quotas,
            )
        except ValueError as err:
            self._say(str(err), bad=True)
            return
        await self._put("quotas", body)

    async def save_grants(self) -> None:
        try:
            body = grants_update(
                self.pinned.value,
                bool(self.isolated.value),
                self.hugepages.value or "",
                bool(self.numa.value),
                self.sriov.value or "",
                self.pci.value or "",
                self.detail.grants,
            )
        except ValueError as err:
            self._say(str(err), bad=True)
            return
        await self._put("grants", body)

    async def _put(self, what: str, body: QuotasUpdate | GrantsUpdate) -> None:
        sent = {k: v for k, v in msgspec.to_builtins(body).items() if v is not None}
        try:
            answer = await self.user.call("PUT", tenant_path(self.detail.name, what), json=sent)
        except ApiError as err:
            self._say(f"Saving the {what} failed: {err.text}", bad=True)
            return
        note = str(answer.get("note") or "")
        self._say(f"{what.capitalize()} saved." + (f" Note: {note}" if note else ""), bad=False)
        if note:
            self.message.classes(replace="text-sm text-warning")
        # What was just saved is the base the next edit's removed keys are counted from.
        self.detail = msgspec.structs.replace(
            self.detail,
            **{what: msgspec.convert(answer[what], Quotas if what == "quotas" else Grants)},
        )
        await self.on_saved()
