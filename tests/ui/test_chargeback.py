"""The Usage page's pure parts: the price form's text, the days of a period, money."""

from __future__ import annotations

import pytest

from ui.chargeback import (
    RatesTextError,
    book_body,
    days_of,
    money,
    quantity,
    rates_text,
    report_of,
)


def _report(from_: str, to: str) -> dict[str, object]:
    return {
        "from": from_,
        "to": to,
        "group_by": "day",
        "tenant": None,
        "currency": None,
        "total_cost": None,
        "lines": [],
    }


def test_rates_text_round_trips_and_names_the_bad_line() -> None:
    body = book_body(
        " 2030-01-01T00:00:00+00:00",
        "EUR ",
        "vcpu = 0.5\n\n# note\nmig:1g.10gb=2",
        "acme vcpu = 0.25",
    )
    assert body == {
        "effective_from": "2030-01-01T00:00:00+00:00",
        "currency": "EUR",
        "rates": {"vcpu": 0.5, "mig:1g.10gb": 2.0},
        "tenant_rates": {"acme": {"vcpu": 0.25}},
    }
    with pytest.raises(RatesTextError, match="line 2"):
        book_body("x", "EUR", "vcpu = 1\nvcpu is cheap", "")
    with pytest.raises(RatesTextError, match="not a number"):
        book_body("x", "EUR", "vcpu = lots", "")
    with pytest.raises(RatesTextError, match="TENANT RESOURCE = RATE"):
        book_body("x", "EUR", "", "vcpu = 1")


def test_days_of_a_period_and_formats() -> None:
    days = days_of(report_of(_report("2030-01-01T00:00:00+00:00", "2030-01-03T00:00:00+00:00")))
    assert [d.day for d in days] == [1, 2]  # "to" at midnight ends the day before
    days = days_of(report_of(_report("2030-01-01T00:00:00+00:00", "2030-01-03T05:10:00+00:00")))
    assert [d.day for d in days] == [1, 2, 3]
    assert (money(1234.5, "EUR"), money(None, None)) == ("1,234.50 EUR", "-")
    assert (quantity(0.0007), quantity(2.0)) == ("0.0007", "2.00")
    assert rates_text(None) == ("", "")
