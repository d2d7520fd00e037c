"""The fleet overview: sites by status, region and label, and the worst problems first."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi.responses import RedirectResponse
from nicegui import ui

from registry_ui import fmt_fleet
from registry_ui.api import ApiError
from registry_ui.deps import Deps
from registry_ui.frame import Frame
from registry_ui.handles import tag
from registry_ui.nav import STATUS_COLOURS
from registry_ui.pages.common import open_page, problem_label
from registry_ui.pages.version_skew import VersionSkew
from registry_ui.session import OperatorApi

STATUS_TEXT = {
    "online": "online",
    "stale": "stale",
    "offline": "offline",
    "pending": "never heard from",
}


# Problems, regions and labels shown at most: the worst first, the rest one click away
# in the site list (and every element more is time before the page is usable).
TOP = 20


def sites_link(**filters: str) -> str:
    return "/sites?" + urlencode(filters)


class Overview:
    def __init__(self, user: OperatorApi, frame: Frame) -> None:
        self.user = user
        self.frame = frame
        self._shown: dict[str, Any] | None = None
        with ui.row().classes("w-full items-baseline gap-4"):
            ui.label("Fleet").classes("text-h5")
            self.total = tag(ui.label(""), "overview-total")
        self.status_row = tag(ui.row().classes("gap-3"), "overview-status")
        with ui.row().classes("w-full gap-4 items-start"):
            with ui.card().classes("min-w-[36rem] grow"):
                ui.label("Worst problems first").classes("text-h6")
                self.problem_counts = tag(ui.row().classes("gap-2"), "problem-counts")
                self.problems = tag(ui.column().classes("w-full gap-1"), "overview-problems")
            with ui.column().classes("gap-4"):
                with ui.card().classes("min-w-[24rem]"):
                    ui.label("By region").classes("text-h6")
                    self.regions = tag(ui.column().classes("w-full gap-0"), "overview-regions")
                with ui.card().classes("min-w-[24rem]"):
                    ui.label("By label").classes("text-h6")
                    self.labels = tag(ui.column().classes("w-full gap-0"), "overview-labels")
                self.versions = VersionSkew(user)

    async def refresh(self) -> None:
        try:
            data = await self.user.get("/api/v1/fleet/overview", params={"limit": TOP})
        except ApiError as err:
            if not self.frame.report(err):
                self.problems.clear()
                with self.problems:
                    problem_label(err, "Reading the fleet overview")
            return
        self.frame.show_up()
        if data == self._shown:
            return
        self._shown = data
        self.draw(data)

    def draw(self, data: dict[str, Any]) -> None:
        self.total.text = f"{data['total']} sites, {data['never_enrolled']} never enrolled"
        self.status_row.clear()
        with self.status_row:
            for status, text in STATUS_TEXT.items():
                count = data["by_status"].get(status, 0)
                with (
                    ui.link(target=sites_link(status=status)).classes("no-underline"),
                    tag(ui.card().classes("px-4 py-2 items-center"), f"status-{status}"),
                ):
                    tag(ui.label(str(count)).classes("text-h5"), f"status-count-{status}")
                    ui.badge(text, color=STATUS_COLOURS[status])
        self._draw_problems(data)
        self.regions.clear()
        with self.regions:
            for region in data["regions"]:
                name = region["region"] or "(no region)"
                with ui.row().classes("w-full gap-2 items-center"):
                    ui.link(name, sites_link(region=region["region"])).classes("w-40")
                    tag(ui.label(str(region["total"])), f"region-total-{name}").classes("w-12")
                    ui.label(fmt_fleet.status_split(region)).classes("text-grey-8 text-sm")
        self.labels.clear()
        with self.labels:
            for label in data["labels"]:
                with ui.row().classes("w-full gap-2"):
                    ui.link(label["label"], sites_link(label=label["label"])).classes("w-48")
                    tag(ui.label(str(label["total"])), f"label-total-{label['label']}")

    def _draw_problems(self, data: dict[str, Any]) -> None:
        self.problem_counts.clear()
        with self.problem_counts:
            for kind, count in data["problem_counts"].items():
                colour = "negative" if count else "positive"
                badge = ui.badge(f"{fmt_fleet.PROBLEM_TEXT[kind]}: {count}", color=colour)
                tag(badge, f"problem-count-{kind}")
        self.problems.clear()
        with self.problems:
            if not data["problems"]:
                tag(ui.label("No problems: every site is in step."), "no-problems")
            for problem in data["problems"]:
                with tag(
                    ui.row().classes("w-full gap-3 items-center"),
                    f"problem-{problem['kind']}-{problem['site']}",
                ):
                    ui.badge(fmt_fleet.PROBLEM_TEXT[problem["kind"]], color="negative")
                    ui.link(problem["site"], f"/sites/{problem['site']}").classes("w-40")
                    ui.label(problem["detail"]).classes("grow")
                    ui.label(fmt_fleet.contact(problem["last_contact"])).classes(
                        "text-grey-7 text-sm"
                    )


def register(deps: Deps) -> None:
    @ui.page("/", title="Towerbox fleet")
    async def overview_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/", "overview")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            page = Overview(user, frame)
        await page.refresh()
        frame.start()
        ui.timer(deps.settings.poll_s, page.refresh)
        # Versions come once the page is shown: the counts and problems are what it is
        # for first (bench fleet_ui_ms), and versions move slowly.
        ui.timer(0, page.versions.refresh, once=True)
        ui.timer(deps.settings.poll_s, page.versions.refresh)
        return None
