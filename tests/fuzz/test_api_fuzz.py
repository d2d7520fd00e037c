"""Property-based fuzzing of the APIs as real processes (tests/support/fuzz.py).

Each API gets at least 2,000 generated requests per run, spread evenly over all its
operations (half that fit the document, half that do not), derandomized so that a run here sends the
same cases every time, then a few stateful sequences along the links schemathesis
infers; ``make fuzz`` runs the long campaign (20,000 cases per API by default) with a
random seed it prints. Every case must get an answer that is not a 5xx and that
matches what the OpenAPI document declares for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fuzz import FuzzReport
from tests.support.fuzz_targets import Target, appliance_target, registry_targets

MIN_CASES = 2000
SCENARIOS = 20  # stateful sequences of up to 10 calls, after the cases per operation

pytestmark = [pytest.mark.fuzz, pytest.mark.slow, pytest.mark.timeout(1200)]


def _run(target: Target) -> FuzzReport:
    # A little more than MIN_CASES: an operation with few distinct inputs can run out
    # before its share.
    report = target.fuzz(MIN_CASES * 11 // 10, seed=None, scenarios=SCENARIOS)
    assert report.failures == {}, "\n\n".join(report.failures.values())
    assert report.server_errors == 0
    assert report.cases >= MIN_CASES, report.lines()
    return report


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Target, Target]]:
    with registry_targets(tmp_path_factory.mktemp("fuzz-registry")) as targets:
        yield targets


def test_the_appliance_api(tmp_path: Path) -> None:
    with appliance_target(tmp_path) as target:
        _run(target)


def test_the_registry_operator_api(registry: tuple[Target, Target]) -> None:
    operator, _ = registry
    _run(operator)


def test_the_registry_sync_routes_with_a_site_secret(registry: tuple[Target, Target]) -> None:
    _, sync = registry
    _run(sync)
