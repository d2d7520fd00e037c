"""The Usage page's pure parts: the price form's text, the days of a period, money."""

from __future__ import annotations

import pytest

from ui.chargeback import (
    PriceBook,
    RatesTextError,
    ResourceChart,
    book_body,
    chart_options,
    days_of,
    money,
    quantity,
    rate_rows,
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


def test_measured_resources_show_their_own_units() -> None:
    book = PriceBook(
        effective_from="2030-01-01T00:00:00+00:00",
        currency="EUR",
        rates={"gpu_energy_kwh": 0.3, "gpu_busy_time": 2.0, "vcpu": 0.05},
        tenant_rates={"acme": {"n6_packets": 1e-6}},
    )
    assert [(r["resource"], r["per"]) for r in rate_rows(book)] == [
        ("gpu_busy_time", "GPU busy-hour"),
        ("gpu_energy_kwh", "kWh"),
        ("vcpu", "vCPU-hour"),
        ("n6_packets (tenant acme)", "packet"),
    ]
    titles = [
        chart_options(ResourceChart(resource, unit, [], {}))["title"]["text"]
        for resource, unit in (("gpu_energy_kwh", "kWh"), ("gpu_busy_time", "GPU busy-hour"))
    ]
    assert titles == ["gpu_energy_kwh (kWh per day)", "gpu_busy_time (GPU busy-hours per day)"]
