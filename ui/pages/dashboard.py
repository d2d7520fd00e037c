"""The dashboard: host, GPUs, VMs by role and state, drift and alerts."""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from ui import attention, fmt
from ui.api import ApiError, tenant_path
from ui.chargeback import month_cost, report_of
from ui.deps import Deps
from ui.live import about
from ui.pages.common import error_label, open_page, tag
from ui.session import UserApi
from ui.usage import detail_of, draw_usage

# Journal kinds an operator must look at: drift the reconcile job found, failures, refusals.
ALERT_PREFIXES = ("drift.",)
ALERT_SUFFIXES = ("_failed", ".rejected", ".conflict", ".layout_restored")
ALERT_WINDOW = 300


def vm_counts(vms: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Role -> state -> count."""
    table: dict[str, Counter[str]] = {}
    for vm in vms:
        table.setdefault(vm.get("role") or "other", Counter())[vm.get("state") or "unknown"] += 1
    return table


def is_alert(entry: dict[str, Any]) -> bool:
    kind = str(entry.get("kind", ""))
    if kind == "vm.state" and (entry.get("state") or {}).get("state") == "crashed":
        return True
    return kind.startswith(ALERT_PREFIXES) or kind.endswith(ALERT_SUFFIXES)


class Dashboard:
    def __init__(self, user: UserApi) -> None:
        self.user = user
        self._vms: list[dict[str, Any]] | None = None
        self._seen: dict[str, Any] = {}
        # A tenant's users (and a viewer bound to a tenant) see their tenant's quotas.
        self.tenant = user.session.tenant
        if self.tenant:
            with ui.card().classes("w-full"):
                ui.label(f"Your tenant: {self.tenant}").classes("text-h6")
                self.tenant_box = tag(ui.column().classes("w-full gap-1"), "dash-tenant")
                self.cost_box = ui.row().classes("items-center gap-2")
        with ui.row().classes("w-full gap-4 items-stretch"):
            with ui.card().classes("min-w-[22rem]"):
                ui.label("VMs by role and state").classes("text-h6")
                self.vm_box = tag(ui.column().classes("gap-1"), "dash-vms")
            with ui.card().classes("min-w-[22rem]"):
                ui.label("GPUs").classes("text-h6")
                self.gpu_box = tag(ui.column().classes("gap-1"), "dash-gpus")
            with ui.card().classes("min-w-[22rem]"):
                ui.label("Needs attention").classes("text-h6")
                self.alert_box = tag(ui.column().classes("gap-1"), "dash-alerts")
        with ui.card().classes("w-full"):
            ui.label("Host").classes("text-h6")
            self.host_box = tag(ui.column().classes("w-full gap-1"), "dash-host")

    async def load(self) -> None:
        await self.refresh_vms()
        await self.refresh_slow()

    async def refresh_vms(self) -> None:
        try:
            vms = await self.user.get("/api/v1/vms")
        except ApiError as err:
            self._replace(self.vm_box, partial(error_label, err, "VMs"))
            return
        if vms == self._vms:
            return
        self._vms = vms
        self._replace(self.vm_box, lambda: self._draw_vms(vms))

    async def refresh_tenant(self) -> None:
        if not self.tenant:
            return
        path = tenant_path(self.tenant)
        try:
            detail = detail_of(await self.user.get(path))
        except ApiError as err:
            self._seen.pop(path, None)
            self._replace(self.tenant_box, partial(error_label, err, "Your tenant"))
            return
        if self._seen.get(path) != detail:
            self._seen[path] = detail
            self._replace(self.tenant_box, lambda: draw_usage(detail, "dash-tenant"))
        await self.refresh_cost()

    async def refresh_cost(self) -> None:
        """ "This month: 12.34 EUR" under the bars, when the node has a price book."""
        try:
            cost = month_cost(report_of(await self.user.get("/api/v1/usage")))
        except ApiError as err:
            self._seen.pop("cost", None)
            self._replace(self.cost_box, partial(error_label, err, "This month's cost"))
            return
        if self._seen.get("cost", "") == cost:
            return
        self._seen["cost"] = cost
        self._replace(self.cost_box, lambda: self._draw_cost(cost))

    @staticmethod
    def _draw_cost(cost: str | None) -> None:
        if cost is not None:
            tag(ui.label(cost).classes("font-bold"), "dash-tenant-cost")
            ui.link("Usage", "/usage").classes("text-sm")

    async def refresh_slow(self) -> None:
        await self.refresh_tenant()
        for box, path, draw, what in (
            (self.host_box, "/api/v1/host", self._draw_host, "Host inventory"),
            (self.gpu_box, "/api/v1/gpus", self._draw_gpus, "GPUs"),
        ):
            try:
                data = await self.user.get(path)
            except ApiError as err:
                self._seen.pop(path, None)
                self._replace(box, lambda err=err, what=what: error_label(err, what))
                continue
            if self._seen.get(path) != data:
                self._seen[path] = data
                self._replace(box, lambda draw=draw, data=data: draw(data))
        try:
            n6_status = await self.user.get("/api/v1/n6/status")
        except ApiError:
            n6_status = None  # a tenant's user does not read the node's N6
        now = attention.lines(self._vms, self._seen.get("/api/v1/gpus"), n6_status)
        try:
            head = (await self.user.get("/api/v1/journal", limit=1))["head"]
            after = max(0, head - ALERT_WINDOW)
            page = await self.user.get("/api/v1/journal", after=after, limit=ALERT_WINDOW)
        except ApiError as err:
            self._replace(self.alert_box, partial(error_label, err, "Journal"))
            return
        alerts = [e for e in reversed(page["entries"]) if is_alert(e)][:5]
        if self._seen.get("alerts") == (now, alerts):
            return
        self._seen["alerts"] = (now, alerts)
        self._replace(self.alert_box, lambda: self._draw_alerts(now, alerts))

    @staticmethod
    def _replace(box: ui.element, draw: Any) -> None:
        box.clear()
        with box:
            draw()

    @staticmethod
    def _draw_vms(vms: list[dict[str, Any]]) -> None:
        counts = vm_counts(vms)
        states = sorted({s for c in counts.values() for s in c})
        total = Counter(vm.get("state") or "unknown" for vm in vms)
        summary = ", ".join(f"{n} {s}" for s, n in sorted(total.items())) or "none"
        tag(ui.label(f"{len(vms)} VMs: {summary}"), "dash-vm-total")
        if not vms:
            return
        with ui.element("table").classes("text-sm"):
            with ui.element("tr"):
                for head in ("role", *states):
                    with ui.element("th").classes("text-left pr-4"):
                        ui.label(head)
            for role in sorted(counts):
                with ui.element("tr"):
                    with ui.element("td").classes("pr-4"):
                        ui.label(role)
                    for state in states:
                        with ui.element("td").classes("pr-4"):
                            ui.label(str(counts[role][state]))

    @staticmethod
    def _draw_gpus(data: dict[str, Any]) -> None:
        ui.label(str(data.get("backend", ""))).classes("text-grey-8 text-sm")
        for gpu in data.get("gpus", []):
            layout = gpu.get("layout") or {}
            roles = Counter(i.get("role") for i in layout.get("instances", []))
            parts = ", ".join(f"{n} {r}" for r, n in sorted(roles.items())) or "no MIG instances"
            mig = gpu.get("mig") or {}
            mode = "MIG on" if mig.get("current") else "MIG off"
            if mig.get("current") != mig.get("pending"):
                mode += " (change pending a GPU reset)"
            ui.label(f"{gpu.get('name')} · {fmt.mib(gpu.get('memory_mib'))} · {mode}")
            ui.label(f"Instances: {parts}").classes("text-sm")
        ui.link("Slot map and layouts", "/gpus")

    @staticmethod
    def _draw_host(data: dict[str, Any]) -> None:
        inv = data.get("inventory") or {}
        usage = {n["id"]: n for n in (data.get("allocation") or {}).get("nodes", [])}
        nodes = inv.get("nodes") or []
        threads = inv.get("threads") or []
        ui.label(
            f"{inv.get('hostname', '?')} · {inv.get('cpu_model', '?')} · "
            f"{len(threads)} CPU threads · {len(nodes)} NUMA node(s)"
        )
        with ui.row().classes("gap-4"):
            for node in nodes:
                use = usage.get(node.get("id"), {})
                cpus = use.get("cpus") or {}
                with ui.card().classes("p-2").props("flat bordered"):
                    ui.label(f"NUMA node {node.get('id')}").classes("font-bold")
                    ui.label(
                        f"CPUs: {cpus.get('total', len(node.get('cpus', [])))} total, "
                        f"{cpus.get('reserved', '-')} reserved, {cpus.get('pinned', '-')} pinned, "
                        f"{cpus.get('free', '-')} free"
                    )
                    ui.label(
                        f"Memory: {fmt.kib(node.get('memory_free_kib'))} free of "
                        f"{fmt.kib(node.get('memory_total_kib'))}"
                    )
                    for pages in node.get("hugepages", []):
                        size = fmt.kib(pages.get("size_kib"))
                        ui.label(
                            f"Hugepages {size}: {pages.get('free')} free of {pages.get('total')}"
                        )

    @staticmethod
    def _draw_alerts(now: list[str], recent: list[dict[str, Any]]) -> None:
        if not now:
            tag(ui.label("Nothing needs attention now."), "dash-attention-none")
        for line in now:
            tag(ui.label(line).classes("text-negative text-sm"), "dash-attention")
        if recent:
            ui.label("Recent failures in the journal").classes("text-grey-7 text-xs pt-2")
        for entry in recent:
            state = entry.get("state")
            name = state.get("name") if isinstance(state, dict) else None
            ui.label(
                f"#{entry['seq']} {fmt.when(entry.get('created_at'))} {entry['kind']} "
                f"{name or entry.get('object_id')}"
            ).classes("text-grey-8 text-sm")
        ui.link("All events", "/events")


def register(deps: Deps) -> None:
    @ui.page("/", title="Towerbox · dashboard")
    async def dashboard_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/", "dashboard")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            ui.label("Dashboard").classes("text-h5")
            board = Dashboard(user)
            await board.load()
            frame.live.watch(board.refresh_vms, deps.settings.live_poll_s * 2, about("vm"))
            frame.live.watch(board.refresh_slow, 10.0, lambda change: change.object_type != "vm")
            frame.start()
        return None
