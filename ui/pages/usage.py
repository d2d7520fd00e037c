"""The Usage page: this month's usage and cost, a daily chart per resource, the totals,
a CSV download and the price book.

A tenant's users see their own tenant (the appliance answers nothing else); an
infra-admin picks all tenants or one. The CSV comes through this process with the
user's token and reaches the browser as a download: no token in any URL.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from ui.api import ApiError
from ui.chargeback import (
    UsageReport,
    chart_options,
    daily_charts,
    report_of,
    total_line,
    total_rows,
)
from ui.deps import Deps
from ui.pages.common import error_label, open_page, tag
from ui.pages.price_book import PriceBookCard
from ui.session import UserApi, notify_error

ALL = ""  # the selector's "all tenants"
REFRESH_S = 30.0
COLUMNS = [
    {"name": "tenant", "label": "Tenant", "field": "tenant", "align": "left"},
    {"name": "resource", "label": "Resource", "field": "resource", "align": "left"},
    {"name": "quantity", "label": "Quantity", "field": "quantity", "align": "right"},
    {"name": "cost", "label": "Cost", "field": "cost", "align": "right"},
]


class UsageView:
    def __init__(self, user: UserApi) -> None:
        self.user = user
        self.tenant = ALL
        self._shown: tuple[UsageReport, UsageReport] | None = None
        with ui.row().classes("w-full items-center gap-4"):
            if user.session.infra_admin:
                self.picker = tag(
                    ui.select({ALL: "All tenants"}, value=ALL, label="Tenant"), "usage-tenant"
                ).classes("w-64")
                self.picker.on_value_change(self.pick)
            else:
                ui.label(f"Tenant: {user.session.tenant or '-'}").classes("text-subtitle1")
            self.period = tag(ui.label("").classes("text-grey-8"), "usage-period")
            ui.space()
            tag(
                ui.button("Download CSV", icon="download", on_click=self.download).props("outline"),
                "usage-csv",
            )
        with ui.card().classes("w-full"):
            ui.label("Totals this month").classes("text-h6")
            self.totals = tag(ui.column().classes("w-full gap-1"), "usage-totals")
        self.charts = tag(ui.row().classes("w-full gap-4"), "usage-charts")
        self.prices = PriceBookCard(user, self.refresh)

    def _params(self, group_by: str) -> dict[str, Any]:
        params: dict[str, Any] = {"group_by": group_by}
        if self.tenant != ALL:
            params["tenant"] = self.tenant
        return params

    async def load(self) -> None:
        if self.user.session.infra_admin:
            try:
                names = [t["name"] for t in await self.user.get("/api/v1/tenants")]
            except ApiError as err:
                notify_error(err, "Listing the tenants")
                names = []
            self.picker.set_options({ALL: "All tenants", **{n: n for n in names}}, value=ALL)
        await self.refresh()

    async def pick(self) -> None:
        self.tenant = str(self.picker.value or ALL)
        await self.refresh()

    async def refresh(self) -> None:
        try:
            daily = report_of(await self.user.get("/api/v1/usage", **self._params("day")))
            total = report_of(await self.user.get("/api/v1/usage", **self._params("total")))
        except ApiError as err:
            self._shown = None
            self.totals.clear()
            self.charts.clear()
            with self.totals:
                error_label(err, "Usage")
            return
        await self.prices.refresh(total.to)
        if (daily, total) == self._shown:
            return
        self._shown = (daily, total)
        self.period.text = f"{daily.from_[:10]} until now (UTC)"
        self.totals.clear()
        with self.totals:
            self._draw_totals(total)
        self.charts.clear()
        with self.charts:
            self._draw_charts(daily)

    def _draw_totals(self, report: UsageReport) -> None:
        rows = total_rows(report)
        if not rows:
            tag(ui.label("No usage this month yet."), "usage-none")
            return
        # One tenant asked for: its name is above, not in every row.
        columns = [c for c in COLUMNS if c["name"] != "tenant" or report.tenant is None]
        if report.total_cost is None:
            columns = [c for c in columns if c["name"] != "cost"]
        tag(ui.table(columns=columns, rows=rows, row_key="key"), "usage-table").classes("w-full")
        tag(ui.label(total_line(report)).classes("font-bold"), "usage-total")

    @staticmethod
    def _draw_charts(report: UsageReport) -> None:
        for chart in daily_charts(report):
            with ui.card().classes("w-[30rem]"):
                echart = ui.echart(chart_options(chart)).classes("w-full h-64")
                tag(echart, f"usage-chart-{chart.resource}")

    async def download(self) -> None:
        try:
            text = await self.user.get("/api/v1/usage.csv", **self._params("day"))
        except ApiError as err:
            notify_error(err, "Downloading the CSV")
            return
        month = self._shown[0].from_[:7] if self._shown else "usage"
        who = self.tenant or self.user.session.tenant or "all"
        ui.download.content(str(text).encode(), f"usage-{who}-{month}.csv", "text/csv")


def register(deps: Deps) -> None:
    @ui.page("/usage", title="Towerbox · usage")
    async def usage_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/usage", "usage")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            ui.label("Usage and cost").classes("text-h5")
            view = UsageView(user)
            await view.load()
            ui.timer(REFRESH_S, view.refresh)
            frame.start()
        return None
