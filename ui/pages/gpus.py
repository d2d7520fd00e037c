"""GPUs: slot maps by role, a target layout dry-run as a diff, apply with progress, schedules."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from ui import fmt, slotmap
from ui.api import ApiError
from ui.deps import Deps
from ui.pages.common import error_label, open_page, tag
from ui.session import UserApi
from ui.theme import ROLE_COLOURS
from ui.vm_actions import confirm

MODES = {
    "counts": "Profile counts",
    "layout": "Named layout",
    "instances": "Exact instances (JSON)",
}


def b2b_counts(instances: list[dict[str, Any]]) -> dict[str, int]:
    """The B2B instances per profile: what the counts form starts from."""
    counts: dict[str, int] = {}
    for inst in instances:
        if inst.get("role", "b2b") == "b2b":
            counts[inst["profile"]] = counts.get(inst["profile"], 0) + 1
    return counts


def draw_ruler(title: str, blocks: list[slotmap.Block], total: int, testid: str) -> None:
    ui.label(title).classes("text-xs text-grey-8")
    grid = (
        ui.element("div")
        .classes("w-full gap-1")
        .style(f"display:grid;grid-template-columns:repeat({max(total, 1)},minmax(0,1fr))")
    )
    tag(grid, testid)
    with grid:
        for block in blocks:
            owner = f" · {block.owner}" if block.owner else ""
            text = "free" if block.free else f"{block.label} · {block.role}{owner}"
            cell = (
                ui.element("div")
                .classes("rounded px-1 py-2 text-xs truncate")
                .style(
                    f"grid-column:{block.start + 1} / span {block.span};"
                    f"background:{ROLE_COLOURS.get(block.role, ROLE_COLOURS['other'])};"
                    f"color:{'#111' if block.free else '#fff'}"
                )
            )
            cell.props(
                f'data-role="{block.role}" data-testid="slot-block" role="img" '
                f'aria-label="{text}, slots {block.start}-{block.start + block.span - 1}"'
            )
            with cell:
                ui.label(text)


def draw_slot_map(instances: list[dict[str, Any]], geo: slotmap.Geometry, testid: str) -> None:
    draw_ruler(
        f"Memory slots ({geo.memory_slots})",
        slotmap.memory_blocks(instances, geo),
        geo.memory_slots,
        f"{testid}-memory",
    )
    draw_ruler(
        f"Compute slices ({geo.compute_slices})",
        slotmap.compute_blocks(instances, geo),
        geo.compute_slices,
        f"{testid}-compute",
    )


def legend() -> None:
    with ui.row().classes("gap-3 text-xs items-center"):
        for role, label in (("vran", "vRAN (protected)"), ("b2b", "B2B"), ("free", "free")):
            with ui.row().classes("items-center gap-1"):
                ui.element("span").classes("inline-block w-3 h-3 rounded").style(
                    f"background:{ROLE_COLOURS[role]}"
                )
                ui.label(label)


class GpuCard:
    def __init__(
        self,
        user: UserApi,
        gpu: dict[str, Any],
        profiles: list[dict[str, Any]],
        layouts: dict[str, Any],
        index: int,
    ) -> None:
        self.user = user
        self.uuid = str(gpu["uuid"])
        self.profiles = profiles
        self.geo = slotmap.geometry(profiles)
        self.layouts = layouts
        self._instances: list[dict[str, Any]] | None = None
        self._plan_body: dict[str, Any] | None = None
        self._plan_current: dict[str, Any] | None = None
        with ui.card().classes("w-full"):
            mig = gpu.get("mig") or {}
            ui.label(f"{gpu.get('name')} ({gpu.get('model')})").classes("text-h6")
            pending = (
                " — MIG change pending a GPU reset"
                if mig.get("current") != mig.get("pending")
                else ""
            )
            ui.label(
                f"{self.uuid} · PCI {gpu.get('pci_address')} · NUMA {gpu.get('numa_node')} · "
                f"{fmt.mib(gpu.get('memory_mib'))} · "
                f"MIG {'on' if mig.get('current') else 'off'}{pending}"
            ).classes("text-sm text-grey-8")
            legend()
            self.map_box = tag(ui.column().classes("w-full gap-1"), f"slotmap-{index}")
            if not profiles:
                ui.label("This GPU has no MIG profiles: it is used whole.")
                return
            ui.separator()
            ui.label("Target layout").classes("font-bold")
            self.mode = tag(
                ui.toggle(MODES, value="counts", on_change=self._mode_changed), f"gpu-mode-{index}"
            ).props('aria-label="How to give the target layout"')
            self.counts_box = ui.row().classes("gap-2")
            with self.counts_box:
                self.counts = {
                    p["name"]: tag(
                        ui.number(
                            f"{p['name']} count", value=0, min=0, max=p["max_count"], precision=0
                        ).classes("w-32"),
                        f"gpu-count-{index}-{p['name']}",
                    )
                    for p in profiles
                    if "+" not in p["name"]
                }
                ui.label("Counts are for B2B slices; the vRAN slice stays where it is.").classes(
                    "text-xs text-grey-7 self-center"
                )
            self.layout_box = ui.row()
            with self.layout_box:
                if layouts:
                    self.layout = tag(
                        ui.select(sorted(layouts), label="Named layout").classes("w-64"),
                        f"gpu-layout-{index}",
                    )
                else:
                    self.layout = ui.select([], label="Named layout").classes("w-64")
                    ui.label("No named layouts in the appliance configuration ([gpu] layouts).")
            self.json_box = ui.column().classes("w-full")
            with self.json_box:
                self.json = tag(
                    ui.textarea("Target instances (JSON)").classes("w-full font-mono"),
                    f"gpu-json-{index}",
                )
            with ui.row().classes("gap-2"):
                tag(ui.button("Dry-run plan", on_click=self.dry_run), f"gpu-plan-{index}")
                self.apply_button = tag(
                    ui.button("Apply", color="negative", on_click=self.apply), f"gpu-apply-{index}"
                )
                self.apply_button.disable()
            self.plan_box = tag(ui.column().classes("w-full gap-1"), f"gpu-plan-view-{index}")
        self._mode_changed()
        self.show_layout(gpu)

    def _mode_changed(self) -> None:
        mode = self.mode.value
        self.counts_box.set_visibility(mode == "counts")
        self.layout_box.set_visibility(mode == "layout")
        self.json_box.set_visibility(mode == "instances")
        self.apply_button.disable()
        self._plan_body = None

    def show_layout(self, gpu: dict[str, Any]) -> None:
        instances = list((gpu.get("layout") or {}).get("instances") or [])
        if instances == self._instances:
            return
        self._instances = instances
        if self.profiles and self._plan_body is None:
            # The form starts from what the GPU has: a dry-run of it as it stands is empty.
            for name, count in b2b_counts(instances).items():
                if name in self.counts:
                    self.counts[name].value = count
        self.map_box.clear()
        with self.map_box:
            draw_slot_map(instances, self.geo, "slotmap")
        if self.profiles and not self.json.value:
            self.json.value = json.dumps(instances, indent=1)

    def target(self) -> dict[str, Any] | None:
        mode = self.mode.value
        if mode == "counts":
            counts = {name: int(n.value or 0) for name, n in self.counts.items() if n.value}
            return {"counts": counts}
        if mode == "layout":
            if not self.layout.value:
                self.layout.error = "Choose a layout."
                return None
            return {"layout": self.layout.value}
        try:
            instances = json.loads(self.json.value or "[]")
        except json.JSONDecodeError as err:
            self.json.error = f"Not JSON: {err.msg} at line {err.lineno} [invalid_json]"
            return None
        self.json.error = None
        return {"instances": instances}

    async def dry_run(self) -> None:
        body = self.target()
        if body is None:
            return
        self.apply_button.disable()
        self.plan_box.clear()
        try:
            plan = await self.user.post(f"/api/v1/gpus/{self.uuid}/plan", json=body)
        except ApiError as err:
            with self.plan_box:
                error_label(err, "The plan was refused")
            return
        self._plan_body = body
        self._plan_current = plan.get("current")
        with self.plan_box:
            self._draw_plan(plan)
        if not plan.get("empty") and not plan.get("blocked"):
            self.apply_button.enable()

    def _draw_plan(self, plan: dict[str, Any]) -> None:
        if plan.get("empty"):
            ui.label("Nothing to change: the GPU already has this layout.")
            return
        ui.label("Dry-run plan").classes("font-bold")
        with ui.element("pre").classes("text-sm bg-grey-2 p-2 rounded w-full"):
            for sign, text in slotmap.plan_lines(plan):
                colour = {"-": "text-red-8", "+": "text-green-8"}.get(sign, "text-grey-7")
                tag(ui.label(f"{sign} {text}").classes(colour), "plan-line")
        drain = plan.get("drain") or []
        owners = sorted({d["owner"] for d in drain if d.get("owner")})
        tag(
            ui.label(
                "Workloads to drain: "
                + (", ".join(owners) if owners else "none")
                + (f" ({len(drain)} instance(s) change)" if drain else "")
            ),
            "plan-drain",
        )
        for work in plan.get("workloads") or []:
            colour = {"restart": "text-grey-9", "wait": "text-orange-9"}.get(
                work["effect"], "text-red-9"
            )
            tag(
                ui.label(f"{work['owner']} on {work['instance']}: {work['detail']}").classes(
                    f"text-sm {colour}"
                ),
                "plan-workload",
            )
        blocked = plan.get("blocked")
        if blocked:
            tag(
                ui.label(f"The apply would be refused: {blocked['detail']} [{blocked['code']}]")
                .classes("text-negative font-bold")
                .props('role="alert"'),
                "plan-blocked",
            )
        ui.label("Layout after apply:").classes("text-sm")
        draw_slot_map(slotmap.target_instances(plan), self.geo, "plan-slotmap")

    async def apply(self) -> None:
        body = self._plan_body
        if body is None:
            return
        if not await confirm(
            "Apply this layout?",
            "B2B slices that change are destroyed and re-created; their workloads are drained "
            "first. The vRAN slice is never touched.",
            "Apply layout",
        ):
            return
        self.apply_button.disable()
        progress = ui.notification("Applying the GPU layout…", spinner=True, timeout=None)
        try:
            result = await self.user.post(
                f"/api/v1/gpus/{self.uuid}/apply", json={**body, "expect": self._plan_current}
            )
        except ApiError as err:
            # Beside the plan, not over it: the operator reads both to decide.
            with self.plan_box:
                error_label(err, "The apply was refused")
            return
        finally:
            progress.dismiss()
        ops = len((result.get("plan") or {}).get("ops") or [])
        drain = result.get("drain") or {}
        owners = ", ".join(drain.get("owners") or []) or "none"
        ui.notify(f"Layout applied: {ops} operation(s); drained: {owners}", type="positive")
        self.plan_box.clear()
        self._plan_body = None
        self._plan_current = None
        await self.refresh()

    async def refresh(self) -> None:
        try:
            gpu = await self.user.get(f"/api/v1/gpus/{self.uuid}")
        except ApiError:
            return
        self.show_layout(gpu)


def draw_schedules(schedules: list[dict[str, Any]]) -> None:
    if not schedules:
        ui.label(
            "No GPU schedules. Add them in the configuration "
            "or with PUT /api/v1/gpus/schedules/{name}."
        )
        return
    rows = [
        {
            "name": s["name"],
            "gpu": s["gpu"],
            "cron": s["cron"],
            "target": json.dumps(s.get("target")),
            "source": s.get("source", ""),
            "next_run": fmt.when(s.get("next_run")),
        }
        for s in schedules
    ]
    columns = [
        {"name": key, "label": label, "field": key, "align": "left"}
        for key, label in (
            ("name", "Name"),
            ("gpu", "GPU"),
            ("cron", "Cron (UTC)"),
            ("target", "Target"),
            ("source", "Source"),
            ("next_run", "Next run"),
        )
    ]
    tag(ui.table(columns=columns, rows=rows, row_key="name"), "gpu-schedules").classes("w-full")


def register(deps: Deps) -> None:
    @ui.page("/gpus", title="Towerbox · GPUs")
    async def gpus_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/gpus", "gpus")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            ui.label("GPUs").classes("text-h5")
            try:
                data = await user.get("/api/v1/gpus")
                layouts = await user.get("/api/v1/gpus/layouts")
                schedules = await user.get("/api/v1/gpus/schedules")
            except ApiError as err:
                error_label(err, "Loading the GPUs failed")
                return None
            ui.label(f"Backend: {data.get('backend')}").classes("text-grey-8")
            cards: list[GpuCard] = []
            for index, gpu in enumerate(data.get("gpus", [])):
                try:
                    profiles = await user.get(f"/api/v1/gpus/{gpu['uuid']}/profiles")
                except ApiError as err:
                    error_label(err, f"Profiles of {gpu['uuid']}")
                    profiles = []
                cards.append(GpuCard(user, gpu, profiles, layouts, index))
            if not cards:
                ui.label("This node has no GPU.")
            ui.label("Schedules").classes("text-h6")
            draw_schedules(schedules)

            async def refresh() -> None:
                for card in cards:
                    await card.refresh()

            # A VM bound to, drained from or waiting for a slice changes the map too.
            frame.live.watch(
                refresh, 3.0, lambda c: c.object_type == "gpu" or c.kind.startswith("vm.")
            )
            frame.start()
        return None
