"""The "top" page: the VMs and GPU slices the user may see, busiest first, live.

Rows hold the figures as numbers, so a click on a column sorts by the figure, not by
its text; the browser formats them. Each refresh replaces the rows only when a
figure changed, and keeps the user's chosen order.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from ui.api import ApiError
from ui.deps import Deps
from ui.handles import tag
from ui.pages.common import error_label, open_page
from ui.session import UserApi

# Quasar column formatters, in the browser: bytes and rates, percentages.
_BYTES = """(v) => { if (v === null || v === undefined) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v.toFixed(0)) + ' ' + u[i]; }"""
_RATE = _BYTES.replace("+ u[i]; }", "+ u[i] + '/s'; }")
_PCT = "(v) => v === null || v === undefined ? '-' : v.toFixed(1) + '%'"


def _column(name: str, label: str, fmt: str | None = None, left: bool = False) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "label": label, "field": name, "sortable": True}
    column["align"] = "left" if left else "right"
    if fmt is not None:
        column[":format"] = fmt
    return column


VM_COLUMNS = [
    _column("name", "VM", left=True),
    _column("tenant", "Tenant", left=True),
    _column("state", "State", left=True),
    _column("cpu", "CPU", _PCT),
    _column("memory", "Memory", _BYTES),
    _column("rx", "Net in", _RATE),
    _column("tx", "Net out", _RATE),
    _column("read", "Disk read", _RATE),
    _column("write", "Disk write", _RATE),
    _column("slice", "GPU slice", left=True),
    _column("gpu", "GPU busy", _PCT),
]
SLICE_COLUMNS = [
    _column("gpu", "GPU", left=True),
    _column("slice", "Slice", left=True),
    _column("role", "Role", left=True),
    _column("owner", "Holder", left=True),
    _column("tenant", "Tenant", left=True),
    _column("busy", "Busy", _PCT),
    _column("scope", "Measured per", left=True),
    _column("memory", "Memory used", _BYTES),
]
NAME_SLOT = r"""
<q-td :props="props"><a :href="'/vms/' + encodeURIComponent(props.value)"
   class="text-primary" :data-testid="'top-vm-' + props.value">{{ props.value }}</a></q-td>
"""


def slice_name(s: dict[str, Any]) -> str:
    return "whole GPU" if s.get("profile") is None else f"{s['profile']}@{s['start']}"


def vm_rows(top: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for vm in top.get("vms") or []:
        gpu = vm.get("gpu")
        rows.append(
            {
                "name": vm["name"],
                "tenant": vm.get("tenant") or "(node)",
                "state": vm["state"],
                "cpu": vm["cpu_pct"],
                "memory": vm["memory_bytes"],
                "rx": vm["net_rx_bps"],
                "tx": vm["net_tx_bps"],
                "read": vm["disk_read_bps"],
                "write": vm["disk_write_bps"],
                "slice": slice_name(gpu) if gpu else "-",
                "gpu": gpu["utilization_pct"] if gpu else None,
            }
        )
    return rows


def slice_rows(top: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "key": f"{s['gpu']}/{slice_name(s)}",
            "gpu": s["pci_address"],
            "slice": slice_name(s),
            "role": s.get("role") or "-",
            "owner": s.get("owner") or "(free)",
            "tenant": s.get("tenant") or ("(node)" if s.get("owner") else "-"),
            "busy": s.get("utilization_pct"),
            "scope": "slice" if s.get("scope") == "mig" else "whole GPU",
            "memory": s.get("memory_used_bytes"),
        }
        for s in top.get("slices") or []
    ]


def _table(columns: list[dict[str, Any]], key: str, sort_by: str, label: str) -> ui.table:
    table = ui.table(
        columns=columns,
        rows=[],
        row_key=key,
        pagination={"rowsPerPage": 0, "sortBy": sort_by, "descending": True},
    ).classes("w-full")
    table.props(f'dense flat bordered aria-label="{label}"')
    return table


class TopView:
    def __init__(self, user: UserApi, top: dict[str, Any]) -> None:
        self.user = user
        ui.label("Top").classes("text-h5")
        self.note = tag(ui.label("").classes("text-grey-7 text-xs"), "top-note")
        self.vms = tag(_table(VM_COLUMNS, "name", "cpu", "VMs by current use"), "top-vms")
        self.vms.add_slot("body-cell-name", NAME_SLOT)
        ui.label("GPU slices").classes("text-h6")
        self.slices = tag(
            _table(SLICE_COLUMNS, "key", "busy", "GPU slices by current use"), "top-slices"
        )
        self.show(top)

    def show(self, top: dict[str, Any]) -> None:
        for table, rows in ((self.vms, vm_rows(top)), (self.slices, slice_rows(top))):
            if table.rows != rows:  # unchanged: send nothing to the browser
                table.rows = rows
                table.update()
        self.slices.set_visibility(bool(self.slices.rows))
        self.note.text = (
            "Figures from the monitor's last sweep; rates over its last two. "
            "Click a column to sort by it."
            if top.get("taken_at")
            else "No sweep yet: the monitor has not read the node since the appliance started."
        )

    async def refresh(self) -> None:
        try:
            self.show(await self.user.get("/api/v1/top"))
        except ApiError:
            return  # the frame's banner says when the appliance is gone


def register(deps: Deps) -> None:
    @ui.page("/top", title="Towerbox · Top")
    async def top_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/top", "top")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            try:
                top = await user.get("/api/v1/top")
            except ApiError as err:
                error_label(err, "Loading the node's use failed")
                return None
            view = TopView(user, top)
            # Figures from the monitor's last sweep: refetched after each one.
            frame.live.watch(view.refresh, deps.settings.live_poll_s, sweeps=True)
            frame.start()
        return None
