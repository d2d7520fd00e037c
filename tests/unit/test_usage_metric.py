"""towerbox_usage_seconds_total from metering's totals: labels, units, never down."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from appliance.metrics import Metrics, UsageTotals

SECOND = 1_000_000


def _samples(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    text = metrics.render().decode()
    family = next(
        f for f in text_string_to_metric_families(text) if f.name == "towerbox_usage_seconds"
    )
    return {
        (s.labels["tenant"], s.labels["resource"], s.labels["profile"]): s.value
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_labels_units_and_the_nodes_own_tenant() -> None:
    totals: UsageTotals = {
        ("acme", "vcpu"): 4 * SECOND,
        ("acme", "memory_mib"): 2048 * SECOND,  # 2 GiB for a second
        ("acme", "hugepages:1G"): 1024 * 3 * SECOND,
        ("acme", "mig:1g.10gb"): 5 * SECOND,
        ("acme", "mig:3g.40gb"): 7 * SECOND,
        ("", "disk_gib"): 10 * SECOND,
    }
    metrics = Metrics()
    metrics.count_usage(lambda: totals)
    assert _samples(metrics) == {
        ("acme", "vcpu", ""): 4.0,
        ("acme", "memory", ""): 2.0,
        ("acme", "hugepages", "1G"): 3.0,
        ("acme", "mig", "1g.10gb"): 5.0,
        ("acme", "mig", "3g.40gb"): 7.0,
        ("_node", "disk", ""): 10.0,
    }


def test_a_counter_never_goes_down() -> None:
    # An open interval counted up to one scrape may close a little before it.
    readings = iter([{("acme", "vcpu"): 10 * SECOND}, {("acme", "vcpu"): 9 * SECOND}])
    metrics = Metrics()
    metrics.count_usage(lambda: next(readings))
    assert _samples(metrics)[("acme", "vcpu", "")] == 10.0
    assert _samples(metrics)[("acme", "vcpu", "")] == 10.0
