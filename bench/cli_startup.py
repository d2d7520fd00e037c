"""cli_import_ms, cli_vs_python_startup: what a command line costs before it works.

``cli_import_ms``: the time ``towerbox vm list --help`` spends importing, read from
``python -X importtime`` (the sum of every top-level import's cumulative time), the
median of 10 runs. Target <= 150 ms: a node command must not import the registry,
the UI or the daemon.

``cli_vs_python_startup``: the wall time of ``towerbox --version`` over that of a bare
``python -c pass`` with the same interpreter, each the median of 10 runs taken in
turn, side by side. Target <= 3.0.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 10
TARGET_IMPORT_MS = 150.0
TARGET_RATIO = 3.0

PYTHON = sys.executable
TOWERBOX = str(Path(PYTHON).with_name("towerbox"))


def import_ms(argv: list[str]) -> float:
    """Milliseconds of imports in one run: the top-level entries of -X importtime."""
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    total_us = 0
    for line in proc.stderr.splitlines():
        # "import time:   self [us] |  cumulative | imported package"; a top-level
        # import has no indentation before its name.
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part for part in line.removeprefix("import time:").split("|"))
        if not name.startswith(" ") or name.startswith("  "):
            continue
        total_us += int(cumulative)
    return total_us / 1000


def wall_ms(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> int:
    # The console script is a Python file: run it under -X importtime directly.
    imports = statistics.median(import_ms([TOWERBOX, "vm", "list", "--help"]) for _ in range(RUNS))
    towerbox, bare = [], []
    for _ in range(RUNS):  # in turn, so both see the same machine load
        towerbox.append(wall_ms([TOWERBOX, "--version"]))
        bare.append(wall_ms([PYTHON, "-c", "pass"]))
    ratio = statistics.median(towerbox) / statistics.median(bare)
    print(f"cli_import_ms: {imports:.1f} ms")
    print(f"cli_version_ms: {statistics.median(towerbox):.1f} ms")
    print(f"python_startup_ms: {statistics.median(bare):.1f} ms")
    print(f"cli_vs_python_startup: {ratio:.2f} x")
    ok = imports <= TARGET_IMPORT_MS and ratio <= TARGET_RATIO
    if not ok:
        print(
            f"missed: cli_import_ms <= {TARGET_IMPORT_MS:.0f}, "
            f"cli_vs_python_startup <= {TARGET_RATIO}",
            file=sys.stderr,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
