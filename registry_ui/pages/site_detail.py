"""One site: host facts, VMs, GPU layouts, VNets (each as of when the node said so),
the journal tail with its actors, conflicts, and the desired documents' status."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi.responses import RedirectResponse
from nicegui import ui

from registry_ui import fmt_fleet, site_view
from registry_ui.api import ApiError, site_path
from registry_ui.deps import Deps
from registry_ui.handles import tag
from registry_ui.nav import STATUS_COLOURS
from registry_ui.pages.common import open_page, problem_label
from registry_ui.session import OperatorApi
from towerbox_core.fmt import problem_line

JOURNAL_TAIL = 25


def document_link(scope: str, kind: str) -> str:
    return "/documents?" + urlencode({"scope": scope, "kind": kind})


def draw_ruler(model: str, instances: list[dict[str, Any]], testid: str) -> None:
    blocks, total = site_view.compute_ruler(model, instances)
    ui.label(f"compute slices ({total})").classes("text-xs text-grey-7")
    with tag(ui.row().classes("w-full gap-0 no-wrap"), testid):
        for block in blocks:
            colour = site_view.ROLE_COLOURS.get(block.role, site_view.ROLE_COLOURS["b2b"])
            owner = f" · {block.owner}" if block.owner else ""
            cell = ui.element("div").classes("h-8 text-xs text-white flex items-center px-1")
            cell.style(f"flex: {block.span}; background: {colour}; border: 1px solid white")
            cell.props(f'data-role="{block.role}"')
            with cell:
                ui.label("" if block.free else f"{block.label}{owner}")
                ui.tooltip(f"{block.label} at slice {block.start} ({block.role}{owner})")


class SiteDetail:
    def __init__(self, user: OperatorApi, name: str) -> None:
        self.user = user
        self.name = name

    async def load(self) -> None:
        try:
            site = await self.user.get(site_path(self.name))
            objects = await self.user.get(site_path(self.name, "objects"))
            vms = await self.user.get("/api/v1/fleet/vms", params={"site": self.name})
            head = int(site["acked_seq"])
            journal = await self.user.get(
                site_path(self.name, "journal"),
                params={"after": max(0, head - JOURNAL_TAIL), "limit": JOURNAL_TAIL},
            )
            conflicts = await self.user.get("/api/v1/conflicts", params={"site": self.name})
            desired = await self.user.get(site_path(self.name, "desired"))
        except ApiError as err:
            problem_label(err, f"Reading site {self.name}")
            return
        grouped = site_view.by_type(objects["objects"])
        self.draw_head(site)
        with ui.row().classes("w-full gap-4 items-start"):
            with ui.card().classes("min-w-[30rem] grow"):
                self.draw_vms(vms["vms"])
            with ui.card().classes("min-w-[30rem] grow"):
                self.draw_gpus(grouped.get("gpu", []))
        with ui.row().classes("w-full gap-4 items-start"):
            with ui.card().classes("min-w-[30rem] grow"):
                self.draw_vnets(grouped.get("n6", []))
            with ui.card().classes("min-w-[30rem] grow"):
                self.draw_desired(desired, grouped.get("desired", []))
        with ui.card().classes("w-full"):
            self.draw_conflicts(conflicts["conflicts"])
        with ui.card().classes("w-full"):
            self.draw_journal(journal["entries"])
        ended = [e for e in site.get("epochs") or [] if not e["current"]]
        if ended:
            with ui.card().classes("w-full"):
                self.draw_epochs(ended)

    def draw_head(self, site: dict[str, Any]) -> None:
        with ui.row().classes("items-center gap-3"):
            tag(ui.label(site["name"]).classes("text-h5"), "site-name")
            tag(ui.badge(site["status"], color=STATUS_COLOURS[site["status"]]), "site-status")
            ui.label(fmt_fleet.contact(site["last_contact"])).classes("text-grey-7")
        beat = site.get("heartbeat") or {}
        host = beat.get("host") or {}
        facts = [
            ("Hostname", site["hostname"] or "-"),
            ("Region", site["region"] or "-"),
            ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(site["labels"].items())) or "-"),
            ("Node", str(host.get("node") or "-")),
            ("Health", str(host.get("health") or host.get("appliance") or "-")),
            ("Agent", str(beat.get("agent_version") or "-")),
            ("Journal", f"held to {site['acked_seq']} of {beat.get('appliance_head', '?')}"),
            ("Enrolled", fmt_fleet.when(site["enrolled_at"])),
            ("Journal epoch", str(site.get("epoch", 1))),
        ]
        with tag(ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-0"), "site-facts"):
            for key, value in facts:
                ui.label(key).classes("text-grey-7")
                ui.label(value)
            for line in host.get("backends") or []:
                ui.label("Backend").classes("text-grey-7")
                ui.label(str(line))

    def draw_vms(self, vms: list[dict[str, Any]]) -> None:
        ui.label(f"VMs ({len(vms)})").classes("text-h6")
        with tag(ui.column().classes("w-full gap-0"), "site-vms"):
            if not vms:
                ui.label("No VM reported.").classes("text-grey-7")
            for vm in vms:
                with tag(ui.row().classes("w-full gap-3"), f"site-vm-{vm['name'] or vm['id']}"):
                    ui.label(vm["name"] or vm["id"]).classes("w-40 font-medium")
                    ui.label(vm["state"] or "?").classes("w-20")
                    ui.label(vm["role"] or "-").classes("w-16")
                    ui.label(vm["tenant"] or "-").classes("w-24")
                    ui.label(fmt_fleet.as_of(vm["as_of"])).classes("text-grey-7 text-sm")

    def draw_gpus(self, gpus: list[dict[str, Any]]) -> None:
        ui.label(f"GPU layouts ({len(gpus)})").classes("text-h6")
        if not gpus:
            ui.label("No GPU layout reported.").classes("text-grey-7")
        for index, gpu in enumerate(gpus):
            layout = site_view.gpu_layout(gpu["state"])
            with tag(ui.column().classes("w-full gap-1"), f"site-gpu-{index}"):
                ui.label(f"{gpu['object_id']} · {fmt_fleet.as_of(gpu['as_of'])}").classes("text-sm")
                if layout is None:
                    ui.label("a layout change is under way").classes("text-grey-7")
                    continue
                model, instances = layout
                ui.label(f"{model}: {len(instances)} MIG instances").classes("font-medium")
                draw_ruler(model, instances, f"slotmap-{index}")

    def draw_vnets(self, n6: list[dict[str, Any]]) -> None:
        vnets = [o for o in n6 if "/" in str(o["object_id"])]
        ui.label(f"VNets ({len(vnets)})").classes("text-h6")
        with tag(ui.column().classes("w-full gap-0"), "site-vnets"):
            if not vnets:
                ui.label("No VNet reported.").classes("text-grey-7")
            for vnet in vnets:
                with ui.row().classes("w-full gap-3"):
                    ui.label(vnet["object_id"]).classes("w-40 font-medium")
                    ui.label(site_view.vnet_line(vnet["state"])).classes("grow")
                    ui.label(fmt_fleet.as_of(vnet["as_of"])).classes("text-grey-7 text-sm")

    def draw_desired(self, desired: dict[str, Any], reports: list[dict[str, Any]]) -> None:
        ui.label("Desired documents").classes("text-h6")
        results = {r["object_id"]: r["state"] or {} for r in reports}
        own = {d["kind"]: d for d in desired["own"]}
        with tag(ui.column().classes("w-full gap-0"), "site-desired"):
            if not desired["effective"]:
                ui.label("No document reaches this site.").classes("text-grey-7")
            for item in desired["effective"]:
                kind = item["kind"]
                result = results.get(kind, {})
                applied = result.get("result") or "not reported"
                same = result.get("etag") == item["etag"]
                with tag(ui.row().classes("w-full gap-3 items-center"), f"desired-{kind}"):
                    scope = f"site:{self.name}" if item["source"] == "site" else item["source"]
                    ui.link(kind, document_link(scope, kind)).classes("w-24")
                    ui.label(f"v{item['version']} from {item['source']}").classes("w-48")
                    colour = "positive" if applied == "applied" and same else "warning"
                    if applied in ("rejected", "conflict"):
                        colour = "negative"
                    text = applied if same or not result else f"{applied} (an older version)"
                    tag(ui.badge(text, color=colour), f"desired-status-{kind}")
                    if kind in own and item["source"] != "site":
                        ui.label("own document overridden").classes("text-grey-7")
                    if same and (why := problem_line(result.get("reason"))):
                        ui.label(why).classes("text-sm text-grey-8")
                self.draw_service_outcomes(result)
            for kind in sorted(set(own) - {i["kind"] for i in desired["effective"]}):
                ui.link(f"{kind} (own)", document_link(f"site:{self.name}", kind))

    def draw_service_outcomes(self, result: dict[str, Any]) -> None:
        """Under a ``services`` document: each service deployed, rejected (with the
        quota or capacity reason), failed, in conflict, or still under way."""
        for name, status, why in site_view.service_outcomes(result):
            with tag(ui.row().classes("w-full gap-3 items-center pl-6"), f"desired-service-{name}"):
                ui.label(name).classes("w-32 font-medium")
                ui.badge(status, color=site_view.SERVICE_COLOURS.get(status, "info"))
                if why:
                    ui.label(why).classes("text-sm text-grey-8")

    def draw_conflicts(self, conflicts: list[dict[str, Any]]) -> None:
        ui.label(f"Conflicts and rejections ({len(conflicts)})").classes("text-h6")
        with tag(ui.column().classes("w-full gap-0"), "site-conflicts"):
            if not conflicts:
                ui.label("None reported.").classes("text-grey-7")
            for c in conflicts[-20:]:
                with ui.row().classes("w-full gap-3"):
                    ui.label(f"#{c['seq']}").classes("w-16")
                    ui.label(f"{c['kind']} v{c['version']}").classes("w-28")
                    ui.badge(c["result"], color="negative")
                    ui.label(str(c["reason"] or "-")).classes("grow")
                    ui.label(fmt_fleet.when(c["created_at"])).classes("text-grey-7 text-sm")

    def draw_epochs(self, ended: list[dict[str, Any]]) -> None:
        """The journals of the nodes this site had before: kept, readable with ?epoch=N."""
        ui.label(f"Ended journal epochs ({len(ended)})").classes("text-h6")
        with tag(ui.column().classes("w-full gap-0"), "site-epochs"):
            for e in ended:
                with tag(ui.row().classes("w-full gap-3"), f"site-epoch-{e['epoch']}"):
                    ui.label(f"epoch {e['epoch']}").classes("w-20")
                    ui.label(e["hostname"] or "-").classes("w-40")
                    ui.label(e["hardware_id"] or "-").classes("w-48 truncate")
                    ui.label(f"{e['entries']} entries, held to {e['acked_seq']}").classes("w-48")
                    ui.label(
                        f"{fmt_fleet.when(e['started_at'])} to {fmt_fleet.when(e['ended_at'])}"
                    ).classes("text-grey-7 text-sm")

    def draw_journal(self, entries: list[dict[str, Any]]) -> None:
        ui.label(f"Journal (last {len(entries)})").classes("text-h6")
        with tag(ui.column().classes("w-full gap-0 font-mono text-sm"), "site-journal"):
            for e in reversed(entries):
                with ui.row().classes("w-full gap-3"):
                    ui.label(f"#{e['seq']}").classes("w-16")
                    ui.label(e["kind"]).classes("w-48")
                    ui.label(f"{e['object_type']} {e['object_id']}").classes("w-64 truncate")
                    ui.label(site_view.actor_text(e.get("actor"))).classes("w-48")
                    ui.label(fmt_fleet.when(e.get("created_at"))).classes("text-grey-7")


def register(deps: Deps) -> None:
    @ui.page("/sites/{name}", title="Towerbox fleet · site")
    async def site_page(name: str) -> RedirectResponse | None:
        opened = await open_page(deps, f"/sites/{quote(name, safe='')}", "sites")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            await SiteDetail(user, name).load()
        frame.start()
        return None
