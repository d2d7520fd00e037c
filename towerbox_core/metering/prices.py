"""Price books: what a unit of each resource costs per hour, versioned by effective time.

A node and the registry keep a list of versions; a report rates each hour with the
version in effect at its start. A version takes effect on the hour and never before
the newest one already kept, so a change of rates never rewrites a past period.
"""

from __future__ import annotations

import datetime as dt
import re

import msgspec

from towerbox_core.errors import Conflict, InvalidInput, NotFound

MAX_RATE = 1_000_000.0
_HOUR_US = 3_600_000_000
_CURRENCY = re.compile(r"[A-Z]{3}")
# Resources a price names: fixed ones, and a MIG profile or hugepage size by name.
FIXED_RESOURCES = (
    "vcpu",
    "memory_gib",
    "disk_gib",
    "gpu",
    "vnet",
    "n6_gb",
    "n6_packets",
    "cpu_time",
    "gpu_energy_kwh",
    "gpu_busy_time",
)
_PROFILE = re.compile(r"mig:[1-8]g\.[0-9]{1,4}gb(\+me)?")
_HUGEPAGES = re.compile(r"hugepages:(2M|1G)")


class PriceBook(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One version. Rates are per unit-hour (vCPU-hour, GiB-hour, slice-hour, GPU-hour)
    for what is held, and per unit for what is measured (N6 GB, packet, CPU-hour, GPU
    kWh, GPU busy-hour)."""

    effective_from: str  # ISO 8601, on the hour, UTC
    currency: str
    rates: dict[str, float] = {}
    # tenant -> resource -> rate, replacing the base rate for that tenant.
    tenant_rates: dict[str, dict[str, float]] = {}

    def rate(self, tenant: str, resource: str) -> float:
        override = self.tenant_rates.get(tenant, {})
        return override.get(resource, self.rates.get(resource, 0.0))


def check_resource(name: str, field: str) -> None:
    if name in FIXED_RESOURCES or _PROFILE.fullmatch(name) or _HUGEPAGES.fullmatch(name):
        return
    raise InvalidInput(
        f"{name!r} is not a priced resource: one of {', '.join(FIXED_RESOURCES)}, "
        "mig:<profile> (mig:1g.10gb) or hugepages:<size> (hugepages:1G)",
        code="unknown_resource",
        field=field,
    )


def effective_us(book: PriceBook) -> int:
    return parse_effective(book.effective_from)


def parse_effective(text: str) -> int:
    """An ``effective_from`` in microseconds: ISO 8601, on the hour (UTC if no zone)."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise InvalidInput(
            f"effective_from {text!r} is not an ISO 8601 time",
            code="invalid_price_book",
            field="effective_from",
        ) from err
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if (when.minute, when.second, when.microsecond) != (0, 0, 0):
        raise InvalidInput(
            "effective_from must be on the hour, so every billed hour has one rate",
            code="invalid_price_book",
            field="effective_from",
        )
    return int(when.timestamp()) * 1_000_000


def check_book(book: PriceBook, newest: PriceBook | None, now_us: int) -> int:
    """Refuse a bad version; returns its effective time in microseconds.

    A version takes effect no earlier than the hour under way (``now_us``'s) and after
    the newest one: an hour already billed keeps its rate.
    """
    start = effective_us(book)
    if start < now_us - now_us % _HOUR_US:
        raise InvalidInput(
            f"effective_from {book.effective_from} lies before the hour under way: a past "
            "period keeps the rates it was billed at",
            code="price_book_in_past",
            field="effective_from",
        )
    if newest is not None and start <= effective_us(newest):
        raise InvalidInput(
            "effective_from must be after the newest version's: a past period keeps "
            "the rates it was billed at",
            code="price_book_in_past",
            field="effective_from",
        )
    if not _CURRENCY.fullmatch(book.currency):
        raise InvalidInput(
            f"currency {book.currency!r} is not an ISO 4217 code like EUR",
            code="invalid_currency",
            field="currency",
        )
    if newest is not None and book.currency != newest.currency:
        raise InvalidInput(
            f"currency {book.currency} differs from the current {newest.currency}: one "
            "node bills in one currency",
            code="currency_mismatch",
            field="currency",
        )
    tables = {"rates": book.rates, **{f"tenant_rates.{t}": r for t, r in book.tenant_rates.items()}}
    for where, table in tables.items():
        for resource, value in table.items():
            field = f"{where}.{resource}"
            check_resource(resource, field)
            if not 0 <= value <= MAX_RATE:
                raise InvalidInput(
                    f"{field} must be 0 to {MAX_RATE:g} per unit-hour, not {value}",
                    code="invalid_rate",
                    field=field,
                )
    return start


def scheduled_version(versions: list[PriceBook], effective_from: str, now_us: int) -> int:
    """The index of the version ``effective_from`` names, which may be removed only while
    it has not taken effect: an hour billed at a version keeps it."""
    start = parse_effective(effective_from)
    for index, book in enumerate(versions):
        if effective_us(book) != start:
            continue
        if start <= now_us:
            raise Conflict(
                f"the version effective {book.effective_from} is in effect: the hours "
                "billed at it keep it; add a newer version to change the rates",
                code="price_book_in_effect",
                field="effective_from",
            )
        return index
    raise NotFound(
        f"no price book version effective {effective_from}",
        code="price_version_not_found",
        field="effective_from",
    )


def book_at(books: list[PriceBook], at_us: int) -> PriceBook | None:
    """The version in effect at ``at_us`` (books in effective order)."""
    found = None
    for book in books:
        if effective_us(book) <= at_us:
            found = book
    return found
