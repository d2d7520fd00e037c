"""The price book on the Usage page: the version in effect, read-only, and for an
infra-admin a form that adds a version and a button that withdraws one not yet in
effect. A refused version shows the appliance's
message and code, and the form keeps what was typed so it can be fixed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from nicegui import ui

from ui.api import ApiError
from ui.chargeback import (
    PriceBook,
    RatesTextError,
    book_body,
    books_of,
    current_book,
    rate_rows,
    rates_text,
    scheduled_books,
)
from ui.handles import tag
from ui.pages.common import error_label
from ui.session import UserApi, notify_error
from ui.vm_actions import confirm

RATES_HINT = (
    "One per line: vcpu = 0.05 (per unit-hour held: memory_gib, mig:1g.10gb, vnet, ...; "
    "per unit measured: n6_gb, cpu_time, gpu_energy_kwh, gpu_busy_time, ...)"
)
TENANT_RATES_HINT = "One per line: acme vcpu = 0.03 (replaces the base rate for that tenant)"


def next_hour() -> str:
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return (now + dt.timedelta(hours=1)).isoformat()


class PriceBookCard:
    def __init__(self, user: UserApi, on_added: Callable[[], Awaitable[None]]) -> None:
        self.user = user
        self.on_added = on_added
        self._shown: tuple[PriceBook | None, list[PriceBook]] | None = None
        self._prefilled = False
        with ui.card().classes("w-full"):
            ui.label("Price book").classes("text-h6")
            self.box = tag(ui.column().classes("w-full gap-1"), "price-book")
            if user.session.infra_admin:
                self._form()

    def _form(self) -> None:
        with ui.expansion("Add a version").classes("w-full") as self.expansion:
            tag(self.expansion, "price-add")
            with ui.row().classes("items-start gap-2"):
                self.effective = tag(
                    ui.input("Effective from (UTC, on the hour)", value=next_hour()),
                    "price-effective",
                ).classes("w-80")
                self.currency = tag(ui.input("Currency", value="EUR"), "price-currency")
            self.rates = tag(
                ui.textarea("Rates", placeholder="vcpu = 0.05"), "price-rates"
            ).classes("w-full")
            ui.label(RATES_HINT).classes("text-xs text-grey-7")
            self.tenant_rates = tag(
                ui.textarea("Rates for one tenant", placeholder="acme vcpu = 0.03"),
                "price-tenant-rates",
            ).classes("w-full")
            ui.label(TENANT_RATES_HINT).classes("text-xs text-grey-7")
            tag(ui.button("Add version", on_click=self.add), "price-add-button")
            self.error = tag(ui.label("").classes("text-negative"), "price-error")
            self.error.props('role="alert"')

    async def refresh(self, now_iso: str) -> None:
        try:
            books = books_of(await self.user.get("/api/v1/prices")).versions
        except ApiError as err:
            self._shown = None
            self.box.clear()
            with self.box:
                error_label(err, "Price book")
            return
        current = current_book(books, now_iso)
        shown = (current, scheduled_books(books, now_iso))
        if shown == self._shown:
            return
        self._shown = shown
        self.box.clear()
        with self.box:
            self._draw(*shown)
        if self.user.session.infra_admin and not self._prefilled:
            # The newest version's rates to start from; never over what was typed.
            self._prefilled = True
            newest = books[-1] if books else None
            self.rates.value, self.tenant_rates.value = rates_text(newest)
            if newest is not None:
                self.currency.value = newest.currency

    def _draw(self, current: PriceBook | None, later: list[PriceBook]) -> None:
        if current is None:
            tag(ui.label("No price book in effect: usage is shown without cost."), "price-none")
        else:
            tag(
                ui.label(
                    f"In effect since {current.effective_from}, in {current.currency}, "
                    "per unit-hour held or per unit measured"
                ),
                "price-current",
            )
            rows = rate_rows(current)
            columns = [
                {"name": "resource", "label": "Resource", "field": "resource", "align": "left"},
                {"name": "rate", "label": current.currency, "field": "rate"},
                {"name": "per", "label": "Per", "field": "per", "align": "left"},
            ]
            tag(ui.table(columns=columns, rows=rows, row_key="resource"), "price-rates-table")
        for book in later:
            with ui.row().classes("items-center gap-2"):
                ui.label(f"Next: effective {book.effective_from}").classes("text-sm text-grey-8")
                if self.user.session.infra_admin:
                    tag(
                        ui.button("Withdraw", on_click=lambda b=book: self.withdraw(b)),
                        f"price-withdraw-{book.effective_from}",
                    ).props("flat dense color=negative")

    async def withdraw(self, book: PriceBook) -> None:
        if not await confirm(
            "Withdraw this price version?",
            f"The rates effective {book.effective_from} will not take effect.",
            "Withdraw",
        ):
            return
        try:
            await self.user.delete(f"/api/v1/prices/{quote(book.effective_from, safe='')}")
        except ApiError as err:
            notify_error(err, "Withdrawing the version")
            return
        ui.notify(f"Price version effective {book.effective_from} withdrawn", type="positive")
        self._shown = None
        await self.on_added()

    async def add(self) -> None:
        self.error.text = ""
        try:
            body = book_body(
                self.effective.value or "",
                self.currency.value or "",
                self.rates.value or "",
                self.tenant_rates.value or "",
            )
        except RatesTextError as err:
            self.error.text = f"Adding the version failed: {err}"
            return
        try:
            await self.user.post("/api/v1/prices", json=body)
        except ApiError as err:
            # What was typed stays, so it can be fixed.
            self.error.text = f"Adding the version failed: {err.text}"
            return
        ui.notify(f"Price book effective {body['effective_from']} added", type="positive")
        self._shown = None
        await self.on_added()
