"""The site list: server-side pages, filters, a debounced search, a shareable URL."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from registry_ui import fmt_fleet
from registry_ui.api import ApiError
from registry_ui.deps import Deps
from registry_ui.frame import Frame
from registry_ui.handles import tag
from registry_ui.nav import STATUS_COLOURS
from registry_ui.pages.common import open_page, problem_label
from registry_ui.session import OperatorApi
from registry_ui.site_query import SORTS, STATUSES, SiteQuery, pages
from towerbox_core.api.versions import COMPONENTS

# Short: the search is meant to follow the typing (bench site_search_ms includes it).
DEBOUNCE_MS = 120

COLUMNS = [
    {"name": "name", "label": "Site", "field": "name", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "region", "label": "Region", "field": "region", "align": "left"},
    {"name": "labels", "label": "Labels", "field": "labels", "align": "left"},
    {"name": "contact", "label": "Last contact", "field": "contact", "align": "left"},
    {"name": "acked", "label": "Journal held", "field": "acked"},
]
NAME_SLOT = r"""
<q-td :props="props"><a :href="'/sites/' + encodeURIComponent(props.value)"
   class="text-primary" :data-testid="'site-link-' + props.value">{{ props.value }}</a></q-td>
"""
STATUS_SLOT = r"""
<q-td :props="props"><q-badge :color="({COLOURS})[props.value] || 'grey'"
   :data-testid="'site-status-' + props.row.name">{{ props.value }}</q-badge></q-td>
""".replace("{COLOURS}", str(STATUS_COLOURS))


def rows_from(sites: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": s["name"],
            "status": s["status"],
            "region": s["region"] or "-",
            "labels": ", ".join(f"{k}={v}" for k, v in sorted(s["labels"].items())) or "-",
            "contact": fmt_fleet.contact(s["last_contact"]) if s["enrolled"] else "never enrolled",
            "acked": s["acked_seq"],
        }
        for s in sites
    ]


class SiteList:
    def __init__(self, user: OperatorApi, frame: Frame, query: SiteQuery) -> None:
        self.user = user
        self.frame = frame
        self.query = query
        # Answers can come back out of order while someone types: only the last counts.
        self._asked = itertools.count(1)
        self._latest = 0
        ui.label("Sites").classes("text-h5")
        with ui.row().classes("w-full gap-3 items-center"):
            self.search = tag(ui.input("Search name or hostname", value=query.q), "site-search")
            self.search.props(f"debounce={DEBOUNCE_MS} clearable outlined dense")
            self.search.on_value_change(lambda e: self.change(q=(e.value or "").strip()))
            options = {"": "any status", **{s: s for s in STATUSES}}
            self.status = tag(
                ui.select(options, value=query.status, label="Status"), "site-filter-status"
            ).props("outlined dense")
            self.status.on_value_change(lambda e: self.change(status=e.value or ""))
            self.region = tag(ui.input("Region", value=query.region), "site-filter-region")
            self.region.props(f"debounce={DEBOUNCE_MS} clearable outlined dense")
            self.region.on_value_change(lambda e: self.change(region=(e.value or "").strip()))
            self.label = tag(ui.input("Label key=value", value=query.label), "site-filter-label")
            self.label.props(f"debounce={DEBOUNCE_MS} clearable outlined dense")
            self.label.on_value_change(lambda e: self.change(label=(e.value or "").strip()))
            components: dict[str, str] = {"": "any component", **{c: c for c in COMPONENTS}}
            self.component = tag(
                ui.select(components, value=query.component, label="Component"),
                "site-filter-component",
            ).props("outlined dense")
            self.component.on_value_change(lambda e: self.change(component=e.value or ""))
            self.version = tag(ui.input("Version", value=query.version), "site-filter-version")
            self.version.props(f"debounce={DEBOUNCE_MS} clearable outlined dense")
            self.version.on_value_change(lambda e: self.change(version=(e.value or "").strip()))
            self.sort = tag(ui.select(SORTS, value=query.sort, label="Sort"), "site-sort")
            self.sort.props("outlined dense").on_value_change(
                lambda e: self.change(sort=e.value or "name")
            )
        self.error = ui.column()
        self.table = tag(ui.table(columns=COLUMNS, rows=[], row_key="name"), "site-table")
        self.table.classes("w-full").props("flat bordered hide-pagination")
        self.table.pagination = {"rowsPerPage": 0}
        self.table.add_slot("body-cell-name", NAME_SLOT)
        self.table.add_slot("body-cell-status", STATUS_SLOT)
        with ui.row().classes("items-center gap-3"):
            self.prev = tag(ui.button("Previous", on_click=lambda: self.turn(-1)), "page-prev")
            self.where = tag(ui.label(""), "site-page")
            self.next = tag(ui.button("Next", on_click=lambda: self.turn(1)), "page-next")
        self.prev.props("flat")
        self.next.props("flat")

    async def change(self, **changes: Any) -> None:
        self.query = self.query.with_(**changes)
        await self.load()

    async def turn(self, step: int) -> None:
        self.query = self.query.with_(page=self.query.page + step)
        await self.load()

    async def refresh(self) -> None:
        """The same page again (statuses move on their own); the URL stays as it is."""
        await self.load(first=True)

    async def load(self, first: bool = False) -> None:
        ticket = self._latest = next(self._asked)
        if not first:
            # The URL says what is shown: reload it or send it to a colleague.
            ui.navigate.history.replace(self.query.url())
        try:
            answer = await self.user.get("/api/v1/sites", params=self.query.params())
        except ApiError as err:
            if ticket == self._latest and not self.frame.report(err):
                self.error.clear()
                with self.error:
                    problem_label(err, "Listing sites")
            return
        if ticket != self._latest:
            return
        self.frame.show_up()
        self.error.clear()
        rows = rows_from(answer["sites"])
        if rows != self.table.rows:
            self.table.rows = rows
            self.table.update()
        total = int(answer["total"])
        count = pages(total)
        self.where.text = f"page {self.query.page} of {count} · {total} sites"
        self.prev.set_enabled(self.query.page > 1)
        self.next.set_enabled(self.query.page < count)


def register(deps: Deps) -> None:
    @ui.page("/sites", title="Towerbox fleet · sites")
    async def sites_page(request: Request) -> RedirectResponse | None:
        query = SiteQuery.from_url(dict(request.query_params))
        opened = await open_page(deps, query.url(), "sites")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            page = SiteList(user, frame, query)
        await page.load(first=True)
        frame.start()
        ui.timer(deps.settings.poll_s, page.refresh)
        return None
