"""The node's text exposition is byte for byte prometheus_client's, for every kind of
metric and every value and label the format has to spell or escape."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from appliance.metrics_text import render


class Fixed(Collector):
    def __init__(self, *families: Metric) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def _every_kind() -> CollectorRegistry:
    registry = CollectorRegistry()
    c = Counter("tbx_things", "Things\\ counted\nhere", ["vm", "tenant"], registry=registry)
    c.labels(vm='we"ird\\name\n', tenant="_node").inc(3)
    c.labels(vm="plain", tenant="acme").inc(2.5)
    g = Gauge("tbx_level", "A level", ["kind"], registry=registry)
    values = {
        "zero": 0,
        "int": 7,
        "small": 0.1,
        "negative": -12.5,
        "big": 154_750_000,
        "just_below": 999_999.5,
        "million": 1e6,
        "huge_negative": -3e12,
        "tiny": 1e-9,
        "inf": math.inf,
        "minus_inf": -math.inf,
        "nan": math.nan,
    }
    for kind, value in values.items():
        g.labels(kind=kind).set(value)
    h = Histogram("tbx_seconds", "A duration", ["route"], registry=registry)
    h.labels(route="/metrics").observe(0.03)
    Summary("tbx_sizes", "Sizes", registry=registry).observe(1234.0)
    Info("tbx_build", "Build", registry=registry).info({"version": "1.2"})
    Enum("tbx_mode", "Mode", states=["a", "b"], registry=registry).state("b")
    gh = GaugeHistogramMetricFamily(
        "tbx_queue", "Queue", buckets=[("1.0", 4), ("+Inf", 5)], gsum_value=3.5
    )
    empty = GaugeMetricFamily("tbx_empty", "Nothing yet", labels=["x"])
    registry.register(Fixed(gh, empty))
    return registry


def test_the_same_bytes_as_prometheus_client() -> None:
    registry = _every_kind()
    assert render(registry) == generate_latest(registry)


@pytest.mark.parametrize(
    "family",
    [
        GaugeMetricFamily("tbx_stamped", "With a timestamp", value=1.0),
        GaugeMetricFamily("tbx_utf8", "A label name past the legacy set", labels=["nom.é"]),
        GaugeMetricFamily("tbx_reserved", "A reserved label name", labels=["__x"]),
    ],
)
def test_what_it_does_not_write_itself_is_still_the_same(family: GaugeMetricFamily) -> None:
    if family.name == "tbx_stamped":
        family.samples[0] = family.samples[0]._replace(timestamp=1_700_000_000.5)
    else:
        family.add_metric(["v"], 2.0)
    registry = _every_kind()
    registry.register(Fixed(family))
    assert render(registry) == generate_latest(registry)


def test_a_labels_dict_shared_by_samples_is_written_for_each() -> None:
    shared = {"vm": "web", "tenant": "acme"}
    families = [GaugeMetricFamily(f"tbx_{n}", n, labels=["vm", "tenant"]) for n in ("a", "b")]
    for family in families:
        family.samples.append(Sample(family.name, shared, 1.0))
    registry = CollectorRegistry()
    registry.register(Fixed(*families))
    assert render(registry) == generate_latest(registry)
    assert render(registry).count(b'{tenant="acme",vm="web"}') == 2
