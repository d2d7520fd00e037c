"""fuzz_cases, fuzz_server_errors: property-based fuzzing of every API, each a real process.

The appliance daemon (simulated backends), the registry's operator API and its sync
routes called with an enrolled site's secret each get ``FUZZ_CASES`` generated
requests (default 2,200) from their own OpenAPI documents, with a random seed printed
first so that ``FUZZ_SEED=<seed>`` replays a run. ``make fuzz`` runs a longer
campaign. Printed per API: ``fuzz_cases: N cases (api)`` (target >= 2,000) and
``fuzz_server_errors: N (api)`` (target 0); any other finding (a status, content
type or body the document does not declare) is printed too and fails the run.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

from tests.support.fuzz import FuzzReport
from tests.support.fuzz_targets import Target, appliance_target, registry_targets

TARGET_CASES = 2000


def _report(target: Target, cases: int, seed: int, scenarios: int) -> FuzzReport:
    report = target.fuzz(cases, seed, scenarios)
    for line in report.lines():
        print(line, flush=True)
    for finding in report.failures.values():
        print(f"finding ({target.api}, seed {seed}):\n{finding}\n", flush=True)
    return report


def main() -> int:
    cases = int(os.environ.get("FUZZ_CASES", "2200"))
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    scenarios = int(os.environ.get("FUZZ_SCENARIOS", "20"))
    print(f"fuzz seed: {seed} (FUZZ_SEED={seed} replays it)", flush=True)
    reports = []
    with tempfile.TemporaryDirectory(prefix="towerbox-fuzz-") as tmp:
        (Path(tmp) / "appliance").mkdir()
        (Path(tmp) / "registry").mkdir()
        with appliance_target(Path(tmp) / "appliance") as appliance:
            reports.append(_report(appliance, cases, seed, scenarios))
        with registry_targets(Path(tmp) / "registry") as (operator, sync):
            reports.append(_report(operator, cases, seed, scenarios))
            reports.append(_report(sync, cases, seed, scenarios))
    missed = [r.api for r in reports if r.cases < TARGET_CASES or r.server_errors > 0 or r.failures]
    if missed:
        print(f"fuzz targets missed for: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
