"""Usage reports and price books as the Usage page and the dashboard show them: daily
chart options, totals rows, money, and the price book form's text as a request body.

Pure functions over the API's typed structs, so the page only binds and the tests need
no browser. Quantities are in the report's units: unit-hours for what is held
(vCPU-hour, GiB-hour, slice-hour), units for what is measured (GB, kWh, GPU
busy-hour); the node's own usage (tenant None in a report) is shown as "node".
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import msgspec

from towerbox_core.api.usage import PriceBook, PriceBooks, UsageLine, UsageReport
from towerbox_core.metering.report import unit_of

NODE_LABEL = "node"
_RATE_LINE = re.compile(r"\s*(?:(?P<tenant>\S+)\s+)?(?P<resource>[^\s=]+)\s*=\s*(?P<rate>\S+)\s*")


def report_of(data: Any) -> UsageReport:
    """The API's answer as its typed struct: a renamed field breaks the type check here."""
    return msgspec.convert(data, UsageReport)


def books_of(data: Any) -> PriceBooks:
    return msgspec.convert(data, PriceBooks)


def tenant_label(tenant: str | None) -> str:
    return tenant or NODE_LABEL


def money(cost: float | None, currency: str | None) -> str:
    if cost is None or currency is None:
        return "-"
    return f"{cost:,.2f} {currency}"


def quantity(value: float) -> str:
    # A few minutes of a VNet still shows as more than nothing.
    return f"{value:.2g}" if 0 < abs(value) < 0.01 else f"{value:,.2f}"


def plural(unit: str) -> str:
    """A report's unit counted many times: "vCPU-hours", "packets"; a symbol (GB, kWh)
    stays as it is."""
    last = re.split(r"[- ]", unit)[-1]
    return f"{unit}s" if last.isalpha() and last.islower() else unit


def _day(iso: str) -> dt.date:
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).date()


def days_of(report: UsageReport) -> list[dt.date]:
    """Every day of the report's period, the last one included even if just begun."""
    first, last = _day(report.from_), _day(report.to)
    if dt.datetime.fromisoformat(report.to).astimezone(dt.UTC).time() == dt.time(0):
        last -= dt.timedelta(days=1)  # ``to`` is exclusive: midnight ends the day before
    count = max((last - first).days + 1, 1)
    return [first + dt.timedelta(days=n) for n in range(count)]


@dataclass(frozen=True)
class ResourceChart:
    resource: str
    unit: str
    days: list[str]  # "11-01"
    series: dict[str, list[float]]  # tenant label -> unit-hours per day


def daily_charts(report: UsageReport) -> list[ResourceChart]:
    """One chart per resource of a ``group_by=day`` report, one series per tenant."""
    days = days_of(report)
    index = {day: n for n, day in enumerate(days)}
    values: dict[str, dict[str, list[float]]] = defaultdict(dict)
    units: dict[str, str] = {}
    for line in report.lines:
        if line.period is None or (n := index.get(_day(line.period))) is None:
            continue
        units[line.resource] = line.unit
        row = values[line.resource].setdefault(tenant_label(line.tenant), [0.0] * len(days))
        row[n] += line.quantity
    labels = [day.strftime("%m-%d") for day in days]
    return [
        ResourceChart(resource, units[resource], labels, dict(sorted(values[resource].items())))
        for resource in sorted(values)
    ]


def chart_options(chart: ResourceChart) -> dict[str, Any]:
    """ECharts options: stacked daily bars per tenant, the unit on the value axis."""
    return {
        "animation": False,
        "title": {
            "text": f"{chart.resource} ({plural(chart.unit)} per day)",
            "textStyle": {"fontSize": 13},
        },
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 22, "show": len(chart.series) > 1},
        "grid": {"top": 56, "left": 56, "right": 16, "bottom": 28},
        "xAxis": {"type": "category", "data": chart.days},
        "yAxis": {"type": "value", "name": chart.unit},
        "series": [
            {"name": name, "type": "bar", "stack": "tenants", "data": [round(v, 4) for v in data]}
            for name, data in chart.series.items()
        ],
    }


def total_rows(report: UsageReport) -> list[dict[str, Any]]:
    """A ``group_by=total`` report as table rows."""
    return [
        {
            "key": f"{tenant_label(line.tenant)}/{line.resource}",
            "tenant": tenant_label(line.tenant),
            "resource": line.resource,
            "quantity": f"{quantity(line.quantity)} {line.unit}",
            "cost": money(line.cost, line.currency),
        }
        for line in report.lines
    ]


def total_line(report: UsageReport) -> str:
    if report.total_cost is None:
        return "No price book: quantities only."
    return f"Total: {money(report.total_cost, report.currency)}"


def month_cost(report: UsageReport) -> str | None:
    """The dashboard's "This month: 12.34 EUR", or None without a price book."""
    if report.total_cost is None:
        return None
    return f"This month: {money(report.total_cost, report.currency)}"


def current_book(books: list[PriceBook], now_iso: str) -> PriceBook | None:
    """The version in effect at ``now_iso`` (books oldest first)."""
    now = dt.datetime.fromisoformat(now_iso)
    found = None
    for book in books:
        if _aware(book.effective_from) <= now:
            found = book
    return found


def scheduled_books(books: list[PriceBook], now_iso: str) -> list[PriceBook]:
    now = dt.datetime.fromisoformat(now_iso)
    return [book for book in books if _aware(book.effective_from) > now]


def _aware(iso: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(iso)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def rate_rows(book: PriceBook) -> list[dict[str, str]]:
    """A version's rates as table rows, each with what it is per ("vCPU-hour", "kWh")."""
    rows = [
        {"resource": r, "rate": f"{v:g}", "per": unit_of(r)} for r, v in sorted(book.rates.items())
    ]
    rows += [
        {"resource": f"{r} (tenant {t})", "rate": f"{v:g}", "per": unit_of(r)}
        for t, table in sorted(book.tenant_rates.items())
        for r, v in sorted(table.items())
    ]
    return rows


def rates_text(book: PriceBook | None) -> tuple[str, str]:
    """A version's rates as the form's text: "vcpu = 0.05" and "acme vcpu = 0.03" lines."""
    if book is None:
        return "", ""
    base = "\n".join(f"{r} = {v:g}" for r, v in sorted(book.rates.items()))
    tenants = "\n".join(
        f"{t} {r} = {v:g}"
        for t, table in sorted(book.tenant_rates.items())
        for r, v in sorted(table.items())
    )
    return base, tenants


class RatesTextError(ValueError):
    pass


def parse_rates(text: str, per_tenant: bool) -> dict[str, Any]:
    """The form's lines as ``rates`` or ``tenant_rates``; the appliance checks the names
    and the values' range, this only the shape of a line."""
    found: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        match = _RATE_LINE.fullmatch(raw)
        if match is None or bool(match["tenant"]) != per_tenant:
            shape = "TENANT RESOURCE = RATE" if per_tenant else "RESOURCE = RATE"
            raise RatesTextError(f"line {number} ({raw.strip()!r}) is not {shape}")
        try:
            rate = float(match["rate"])
        except ValueError as err:
            raise RatesTextError(f"line {number}: {match['rate']!r} is not a number") from err
        table = found.setdefault(match["tenant"], {}) if per_tenant else found
        table[match["resource"]] = rate
    return found


def book_body(effective_from: str, currency: str, rates: str, tenant_rates: str) -> dict[str, Any]:
    return {
        "effective_from": effective_from.strip(),
        "currency": currency.strip(),
        "rates": parse_rates(rates, per_tenant=False),
        "tenant_rates": parse_rates(tenant_rates, per_tenant=True),
    }


__all__ = ["PriceBook", "UsageLine", "UsageReport"]
