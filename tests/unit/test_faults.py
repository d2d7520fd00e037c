"""Fault points: a process dies by SIGKILL at the named point and hit, and only there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

SCRIPT = """
from towerbox_core.faults import fault_point
for i in range(1, 4):
    fault_point("other.point")
    print(i, flush=True)
    fault_point("vm.create.after_define")
print("lived", flush=True)
"""


def _run(fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TOWERBOX_FAULT"}
    if fault is not None:
        env["TOWERBOX_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("fault", "printed"),
    [("vm.create.after_define", "1\n"), ("vm.create.after_define:3", "1\n2\n3\n")],
)
def test_the_process_dies_by_sigkill_at_the_named_hit(fault: str, printed: str) -> None:
    done = _run(fault)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == printed


@pytest.mark.parametrize("fault", [None, "", "vm.create.before_define", "vm.create.after_define:4"])
def test_a_point_not_named_or_not_reached_costs_nothing(fault: str | None) -> None:
    done = _run(fault)
    assert (done.returncode, done.stdout) == (0, "1\n2\n3\nlived\n")


@pytest.mark.parametrize("fault", ["vm.create.after_define:0", "vm.create.after_define:x", ":2"])
def test_a_badly_named_fault_stops_the_process_with_a_message(fault: str) -> None:
    done = _run(fault)
    assert done.returncode == 1
    assert "TOWERBOX_FAULT" in done.stderr and "expected" in done.stderr
