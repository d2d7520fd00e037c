"""Artifacts: what the catalog needs in the image folder, fetches with their progress,
and the off-peak pre-cache plan. Infra-admins fetch now; the page refreshes itself."""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from towerbox_core.api.artifacts import FETCH_UNDER_WAY
from ui import fmt
from ui.api import ApiError
from ui.deps import Deps
from ui.live import about
from ui.pages.common import error_label, open_page, tag
from ui.session import UserApi, notify_error

COLUMNS: list[dict[str, Any]] = [
    {"name": "name", "label": "Artifact", "field": "name", "sortable": True, "align": "left"},
    {"name": "kind", "label": "Kind", "field": "kind", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "sortable": True, "align": "left"},
    {"name": "size", "label": "Size", "field": "size", "align": "right"},
    {"name": "progress", "label": "Fetch", "field": "progress", "align": "left"},
    {"name": "needed_by", "label": "Needed by", "field": "needed_by", "align": "left"},
    {"name": "vms", "label": "VMs", "field": "vms", "align": "left"},
]


def artifact_rows(listing: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": a["name"],
            "kind": a["kind"],
            "state": a["state"],
            "size": fmt.size_bytes(a["size"] if a["size"] is not None else a["size_on_disk"]),
            "progress": fmt.fetch_progress(a["fetch"]),
            "needed_by": ", ".join(a["needed_by"]),
            "vms": ", ".join(a["used_by_vms"]) or "-",
        }
        for a in listing["artifacts"]
    ]


def plan_lines(plan: dict[str, Any]) -> list[str]:
    if plan["window_cron"] is None:
        head = "No off-peak window: set [artifacts] precache_cron to pre-cache."
    elif plan["in_window"]:
        head = f"Window {plan['window_cron']} (UTC), open until {fmt.when(plan['next_end'])}"
    else:
        span = f"{fmt.when(plan['next_start'])} to {fmt.when(plan['next_end'])}"
        head = f"Window {plan['window_cron']} (UTC), next: {span}"
    cap = plan["bandwidth_bytes_s"]
    lines = [head, f"Bandwidth cap: {fmt.size_bytes(cap) + '/s' if cap else 'none'}"]
    if not plan["items"]:
        return [*lines, "Nothing to fetch: every artifact with a source is here."]
    unsized = sum(1 for i in plan["items"] if i["bytes_left"] is None and not i.get("held"))
    lines += [
        f"{i['name']}: {_left(i['bytes_left'])} from {i['url']}"
        + (f"; {i['held']}" if i.get("held") else "")
        for i in plan["items"]
    ]
    total = f"In all: {fmt.size_bytes(plan['total_bytes'])}"
    # A catalog entry without a size: the sum says what it knows, and that it is short.
    return [*lines, total + (f" and {unsized} of unknown size" if unsized else "")]


def _left(n: int | None) -> str:
    return "size unknown" if n is None else fmt.size_bytes(n)


class ArtifactsView:
    def __init__(self, user: UserApi) -> None:
        self.user = user
        self._fetches: list[dict[str, Any]] = []
        self.note = tag(ui.label("").classes("text-grey-7 text-sm"), "artifacts-note")
        self.table = tag(
            ui.table(columns=COLUMNS, rows=[], row_key="name").classes("w-full"),
            "artifacts-table",
        )
        self.table.props('aria-label="Artifacts the catalog names"')
        if user.session.infra_admin:
            with ui.row().classes("items-center gap-2"):
                self.pick = tag(ui.select([], label="Artifact"), "artifacts-pick").classes("w-96")
                tag(ui.button("Fetch now", on_click=self.fetch), "artifacts-fetch")
        ui.label("Pre-cache plan").classes("text-h6")
        self.plan = tag(ui.column().classes("gap-0"), "artifacts-plan")

    async def refresh(self) -> None:
        try:
            listing = await self.user.get("/api/v1/artifacts")
            plan = await self.user.get("/api/v1/artifacts/plan")
        except ApiError as err:
            self.note.text = f"Artifacts unavailable: {err.text}"
            return
        self._fetches = [a["fetch"] for a in listing["artifacts"] if a.get("fetch")]
        self.table.rows = artifact_rows(listing)
        self.table.update()
        self.note.text = (
            f"Image folder {listing['image_dir']}: {fmt.size_bytes(listing['free_bytes'])} free"
        )
        if hasattr(self, "pick"):
            self.pick.options = [a["name"] for a in listing["artifacts"] if a["url"]]
            self.pick.update()
        self.plan.clear()
        with self.plan:
            for line in plan_lines(plan):
                ui.label(line)

    def fetching(self) -> bool:
        """A fetch is under way: its bytes and rate are polled, no entry tells them."""
        return any(f["state"] in FETCH_UNDER_WAY for f in self._fetches)

    async def fetch(self) -> None:
        name = self.pick.value
        if not name:
            ui.notify("Choose an artifact first")
            return
        try:
            await self.user.post(f"/api/v1/artifacts/{name}/fetch")
        except ApiError as err:
            notify_error(err, f"Fetching {name}")
            return
        ui.notify(f"Fetching {name}")
        await self.refresh()


def register(deps: Deps) -> None:
    @ui.page("/artifacts", title="Towerbox · artifacts")
    async def artifacts_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/artifacts", "artifacts")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            ui.label("Artifacts").classes("text-h5")
            view = ArtifactsView(user)
            await view.refresh()
            if view.note.text.startswith("Artifacts unavailable"):
                error_label(ApiError(0, "artifacts", view.note.text), "Artifacts")
            frame.live.watch(view.refresh, 1.0, about("artifact"), busy=view.fetching)
            frame.start()
        return None
