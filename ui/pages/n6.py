"""N6: trunks, VNets per tenant with VLAN, UE pools, attached VMs and counters; plan and apply,
the OVS datapath in use and the last apply's result. Infra-admins declare, edit and
remove trunks and VNets here (the dialogs are in n6_forms)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from ui import fmt
from ui.api import ApiError
from ui.deps import Deps
from ui.live import about
from ui.pages.common import error_label, open_page, tag
from ui.pages.n6_forms import NOT_APPLIED, TrunkDialog, VnetDialog, trunk_path, vnet_path
from ui.session import UserApi, notify_error
from ui.vm_actions import confirm

COLUMNS = [
    {"name": key, "label": label, "field": key, "align": "left"}
    for key, label in (
        ("name", "VNet"),
        ("vlan", "VLAN"),
        ("trunk", "Trunk"),
        ("subnet", "Subnet / gateway"),
        ("ue_pools", "UE pools"),
        ("dnns", "DNNs"),
        ("vms", "Attached VMs"),
        ("applied", "Applied"),
        ("rx", "RX"),
        ("tx", "TX"),
    )
]


def vnet_rows(
    vnets: list[dict[str, Any]], state: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Tenant -> table rows, the declaration joined with the live counters."""
    live = {s["vnet"]: s for s in state}
    by_tenant: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in vnets:
        s = live.get(f"{v['tenant']}/{v['name']}", {})
        by_tenant[v["tenant"]].append(
            {
                "name": v["name"],
                "vlan": v.get("vlan"),
                "trunk": v.get("trunk"),
                "subnet": f"{v.get('subnet')} via {v.get('gateway')}",
                "ue_pools": ", ".join(v.get("ue_pools") or []) or "-",
                "dnns": ", ".join(v.get("dnns") or []) or "-",
                "vms": ", ".join(str(m) for m in s.get("attached_vms") or []) or "none",
                "applied": "yes" if s.get("applied") else "no",
                "rx": f"{fmt.size_bytes(s.get('rx_bytes'))} / {s.get('rx_packets', 0)} pkts",
                "tx": f"{fmt.size_bytes(s.get('tx_bytes'))} / {s.get('tx_packets', 0)} pkts",
            }
        )
    return dict(sorted(by_tenant.items()))


def status_lines(status: dict[str, Any]) -> list[tuple[str, bool]]:
    """The OVS datapath in use, the last apply's result and what waits for an apply,
    each with "is it a failure"."""
    lines: list[tuple[str, bool]] = []
    datapaths = status.get("ovs_datapaths")
    if datapaths:
        auto = datapaths.get("auto") or "none works here"
        simulated = " (simulated)" if datapaths.get("simulated") else ""
        line = f"Open vSwitch datapath for new trunks: {auto}{simulated}"
        lines.append((line, not datapaths.get("auto")))
        for name, why in sorted((datapaths.get("unavailable") or {}).items()):
            lines.append((f"Datapath {name} unavailable: {why}", False))
    lines += _last_apply(status.get("last_apply"))
    pending = status.get("pending") or []
    if pending:
        lines.append((f"Declared, not applied yet: {', '.join(map(str, pending))}", False))
    return lines


def _last_apply(last: dict[str, Any] | None) -> list[tuple[str, bool]]:
    if not last:
        return [("Last apply: never applied", False)]
    what = "apply" if last.get("trigger") == "apply" else "repair (reconcile)"
    at = fmt.when(last.get("at"))
    if last.get("ok"):
        count = sum(len(v) for v in (last.get("changes") or {}).values())
        return [(f"Last {what}: applied, {count} change(s), at {at}", False)]
    failure = f"[{last.get('code')}] {last.get('message')}"
    return [(f"Last {what} failed at {at}: {failure}", True)]


class N6View:
    def __init__(self, user: UserApi) -> None:
        self.user = user
        self._seen: Any = None
        self.editor = user.session.infra_admin  # the appliance lets only them declare N6
        self._trunks: list[dict[str, Any]] = []
        self._auto: str | None = None  # the datapath "auto" picks on this host
        with ui.row().classes("gap-2"):
            tag(ui.button("Plan", on_click=self.plan), "n6-plan")
            self.apply_button = tag(
                ui.button("Apply", color="negative", on_click=self.apply), "n6-apply"
            )
            if self.editor:
                tag(ui.button("New trunk", icon="add", on_click=self.new_trunk), "n6-new-trunk")
                tag(ui.button("New VNet", icon="add", on_click=self.new_vnet), "n6-new-vnet")
            else:
                self.apply_button.disable()
                ui.label(
                    "Plan and apply need the infra-admin role. So do declaring and editing "
                    "trunks and VNets."
                ).classes("text-grey-7")
        # Set by a change made here, cleared by an apply: the node does not have it yet.
        self.pending = tag(ui.label("").classes("text-warning"), "n6-pending")
        self.pending.set_visibility(False)
        # Dialogs live outside the boxes a refresh redraws, so a redraw never closes one.
        self.dialog_host = ui.element("div")
        self.status_box = tag(ui.column().classes("w-full gap-0"), "n6-status")
        self.plan_box = tag(ui.column().classes("w-full"), "n6-plan-view")
        self.trunk_box = tag(ui.column().classes("w-full"), "n6-trunks")
        self.vnet_box = tag(ui.column().classes("w-full gap-4"), "n6-vnets")

    async def refresh(self) -> None:
        try:
            vnets = await self.user.get("/api/v1/n6/vnets")
            state = await self.user.get("/api/v1/n6/state")
        except ApiError as err:
            self.vnet_box.clear()
            with self.vnet_box:
                error_label(err, "Loading the VNets failed")
            return
        try:
            trunks: list[dict[str, Any]] | None = await self.user.get("/api/v1/n6/trunks")
        except ApiError:
            trunks = None  # node-wide: hidden from tenant admins
        try:
            status: dict[str, Any] | None = await self.user.get("/api/v1/n6/status")
        except ApiError:
            status = None  # node-wide too
        seen = (vnets, state, trunks, status)
        if seen == self._seen:
            return
        self._seen = seen
        self._trunks = trunks or []
        self._auto = ((status or {}).get("ovs_datapaths") or {}).get("auto")
        self.status_box.clear()
        with self.status_box:
            for line, failed in status_lines(status) if status else []:
                label = tag(ui.label(line), "n6-status-line")
                if failed:
                    label.classes("text-negative")
        self._draw_trunks(trunks)
        self._draw_vnets(vnets, state)

    def _draw_trunks(self, trunks: list[dict[str, Any]] | None) -> None:
        self.trunk_box.clear()
        with self.trunk_box:
            ui.label("Trunks").classes("text-h6")
            if trunks is None:
                ui.label("Trunks are node-wide; your role does not see them.")
            elif not trunks:
                ui.label("No N6 trunk declared.")
            for t in trunks or []:
                datapath = (
                    f" · datapath {t.get('datapath_type') or 'auto'}" if t["kind"] == "ovs" else ""
                )
                ports = ", ".join(t.get("ports") or []) or "-"
                with ui.row().classes("items-center gap-2"):
                    ui.label(f"{t['name']} ({t['kind']}) · ports {ports}{datapath}")
                    if self.editor:
                        self._edit_buttons(
                            f"trunk-{t['name']}",
                            f"trunk {t['name']}",
                            partial(self.edit_trunk, t),
                            partial(self.delete_trunk, t["name"]),
                        )

    def _draw_vnets(self, vnets: list[dict[str, Any]], state: list[dict[str, Any]]) -> None:
        self.vnet_box.clear()
        with self.vnet_box:
            rows = vnet_rows(vnets, state)
            if not rows:
                ui.label("No tenant VNets declared.")
            for tenant, tenant_rows in rows.items():
                with ui.card().classes("w-full"):
                    ui.label(f"Tenant {tenant}").classes("text-h6")
                    tag(
                        ui.table(columns=COLUMNS, rows=tenant_rows, row_key="name"),
                        f"n6-tenant-{tenant}",
                    ).classes("w-full")
                    if self.editor:
                        self._vnet_buttons(tenant, vnets)

    def _vnet_buttons(self, tenant: str, vnets: list[dict[str, Any]]) -> None:
        with ui.row().classes("gap-4"):
            for v in vnets:
                if v["tenant"] != tenant:
                    continue
                with ui.row().classes("items-center gap-1"):
                    ui.label(v["name"]).classes("text-sm")
                    self._edit_buttons(
                        f"vnet-{tenant}-{v['name']}",
                        f"VNet {tenant}/{v['name']}",
                        partial(self.edit_vnet, v),
                        partial(self.delete_vnet, v["tenant"], v["name"]),
                    )

    @staticmethod
    def _edit_buttons(
        marker: str,
        what: str,
        edit: Callable[[], Awaitable[None]],
        remove: Callable[[], Awaitable[None]],
    ) -> None:
        # Icons only: the label is what a screen reader (and Playwright) reads.
        button = ui.button(icon="edit", on_click=edit).props(f'flat dense aria-label="Edit {what}"')
        tag(button, f"n6-edit-{marker}")
        button = ui.button(icon="delete", color="negative", on_click=remove)
        tag(button.props(f'flat dense aria-label="Remove {what}"'), f"n6-delete-{marker}")

    # -- declaring: each change is saved, shown, and waits for Apply -------------

    async def changed(self) -> None:
        self.pending.text = f"Changes made here are {NOT_APPLIED}."
        self.pending.set_visibility(True)
        self._seen = None
        await self.refresh()
        await self.plan()

    def _trunk_names(self) -> list[str]:
        return [t["name"] for t in self._trunks]

    def _open(self, make: Callable[[], TrunkDialog | VnetDialog]) -> None:
        self.dialog_host.clear()
        with self.dialog_host:
            make().open()

    async def new_trunk(self) -> None:
        self._open(lambda: TrunkDialog(self.user, self.changed, auto_is=self._auto))

    async def edit_trunk(self, trunk: dict[str, Any]) -> None:
        self._open(lambda: TrunkDialog(self.user, self.changed, trunk, self._auto))

    async def _tenants(self) -> list[str] | None:
        try:
            return [t["name"] for t in await self.user.get("/api/v1/tenants")]
        except ApiError as err:
            notify_error(err, "Loading the tenants")
            return None

    async def new_vnet(self) -> None:
        tenants = await self._tenants()
        if tenants is None:
            return
        if not tenants or not self._trunks:
            missing = "a tenant (Tenants page)" if not tenants else "a trunk (New trunk)"
            ui.notify(f"A VNet needs {missing} first.", type="warning")
            return
        trunks = self._trunk_names()
        self._open(lambda: VnetDialog(self.user, self.changed, tenants, trunks))

    async def edit_vnet(self, vnet: dict[str, Any]) -> None:
        trunks = self._trunk_names()
        self._open(lambda: VnetDialog(self.user, self.changed, [vnet["tenant"]], trunks, vnet))

    async def _remove(self, what: str, path: str, body: str) -> None:
        # Asked and answered outside the boxes a refresh redraws: the button that
        # started this may be gone by the time the operator answers.
        with self.dialog_host:
            if not await confirm(f"Remove {what}?", body, "Remove"):
                return
            try:
                await self.user.delete(path)
            except ApiError as err:
                notify_error(err, f"Removing {what}")
                return
            ui.notify(f"Removed {what} from the declaration; {NOT_APPLIED}", type="positive")
        await self.changed()

    async def delete_trunk(self, name: str) -> None:
        body = "Its bridge and ports are taken down at the next Apply."
        await self._remove(f"trunk {name}", trunk_path(name), body)

    async def delete_vnet(self, tenant: str, name: str) -> None:
        body = (
            f"Tenant {tenant}'s traffic on this VNet stops at the next Apply: its VLAN, "
            "bridge and UE pool routes are removed."
        )
        await self._remove(f"VNet {tenant}/{name}", vnet_path(tenant, name), body)

    async def plan(self) -> None:
        self.plan_box.clear()
        try:
            result = await self.user.post("/api/v1/n6/plan")
        except ApiError as err:
            with self.plan_box:
                error_label(err, "Plan refused")
            return
        with self.plan_box:
            draw_changes(result.get("changes") or {}, "Plan: what apply would change")

    async def apply(self) -> None:
        if not await confirm(
            "Apply the N6 declaration?",
            "The node's VLANs, bridges and policy routes are changed to match; all or nothing.",
            "Apply",
        ):
            return
        progress = ui.notification("Applying N6…", spinner=True, timeout=None)
        try:
            result = await self.user.post("/api/v1/n6/apply")
        except ApiError as err:
            notify_error(err, "N6 apply")
            self._seen = None  # the failure is the last apply now
            await self.refresh()
            return
        finally:
            progress.dismiss()
        changes = result.get("changes") or {}
        count = sum(len(v) for v in changes.values())
        ui.notify(f"N6 applied: {count} change(s)", type="positive")
        self.pending.set_visibility(False)
        self.plan_box.clear()
        with self.plan_box:
            draw_changes(changes, "Applied")
        self._seen = None
        await self.refresh()


def draw_changes(changes: dict[str, list[str]], title: str) -> None:
    ui.label(title).classes("font-bold")
    lines = [line for group in changes.values() for line in group]
    if not lines:
        ui.label("Nothing to change: the node matches the declaration.")
        return
    with ui.element("pre").classes("text-sm bg-grey-2 p-2 rounded w-full"):
        for backend, group in changes.items():
            for line in group:
                colour = "text-red-8" if line.startswith("-") else "text-green-8"
                tag(ui.label(f"[{backend}] {line}").classes(colour), "n6-change")


def register(deps: Deps) -> None:
    @ui.page("/n6", title="Towerbox · N6")
    async def n6_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/n6", "n6")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            ui.label("N6 handoff").classes("text-h5")
            view = N6View(user)
            await view.refresh()
            frame.live.watch(view.refresh, 3.0, about("n6"))
            frame.start()
        return None
