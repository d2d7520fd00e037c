"""The daemon killed in the middle of each operation (SIGKILL at a named fault point,
or from outside after a delay), restarted on its state: nothing orphaned (files,
domains, vGPUs, GPU claims, host allocations the rows do not hold), the journal
gap-free, in step with the rows and saying what the restart repaired, the API equal
to the backends, and the operator's retry reaching what the request asked for with
nothing left pending (tests/support/crash.py).

A fixed sample of each operation's points, on the simulated backends; ``make chaos``
(bench/crash_runs.py) runs 250 random ones. The seed of a run is in its failure
message; TOWERBOX_CRASH_SEED replays it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import crash_ops
from tests.support.artifact_server import artifact_server
from tests.support.crash import Harness, Operation, crash_seed

pytestmark = pytest.mark.root

# (operation, fault point or None for a kill from outside after a random delay). The
# points where the harness found defects are here: a create killed after its disks
# (files and domain left with no row; then their removal at the restart, unjournalled),
# an apply killed between its destroy and its create or before its commit (the GPU left
# off its committed layout).
SAMPLE = [
    (crash_ops.VM_CREATE, "vm.create.before_define"),
    (crash_ops.VM_CREATE, "vm.create.after_overlay"),
    (crash_ops.VM_CREATE, "vm.create.after_define"),
    (crash_ops.VM_CREATE, "vm.create.after_start"),
    (crash_ops.VM_CREATE, None),
    (crash_ops.VM_DELETE, "vm.delete.after_undefine"),
    (crash_ops.GPU_APPLY, "gpu.apply.after_drain"),
    (crash_ops.GPU_APPLY, "gpu.apply.after_destroy"),
    (crash_ops.GPU_APPLY, "gpu.apply.before_commit"),
    (crash_ops.GPU_APPLY, None),
    (crash_ops.N6_APPLY, "n6.apply.after_step:2"),  # the start's re-apply
    (crash_ops.N6_APPLY, "n6.apply.after_step:12"),  # the request's apply
    (crash_ops.COMPACTION, "journal.compact.before_commit"),
    (crash_ops.DESIRED_APPLY, "desired.apply.before_record"),
]


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    return Harness(tmp_path_factory.mktemp("crash"))


def _check(h: Harness, op: Operation, point: str | None) -> None:
    result = h.run_at(op, point, crash_seed())
    assert result.converged, result.line()


@pytest.mark.parametrize(
    ("op", "point"), SAMPLE, ids=[f"{op.name}-{point or 'delay'}" for op, point in SAMPLE]
)
def test_a_killed_operation_leaves_a_consistent_node(
    harness: Harness, op: Operation, point: str | None
) -> None:
    _check(harness, op, point)


@pytest.fixture(scope="module")
def artifact_op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operation]:
    work = tmp_path_factory.mktemp("artifact")
    origin = work / "origin"
    origin.mkdir()
    data = os.urandom(3 * 1024 * 1024 + 7)
    (origin / "model.bin").write_bytes(data)
    with artifact_server(origin) as (url, _):
        yield crash_ops.artifact_operation(url, data, work)


@pytest.mark.parametrize("point", ["artifact.fetch.chunk:2", "artifact.fetch.before_publish"])
def test_a_killed_artifact_fetch_publishes_only_a_whole_file(
    harness: Harness, artifact_op: Operation, point: str
) -> None:
    _check(harness, artifact_op, point)


def test_every_point_of_the_sample_is_one_its_operation_names() -> None:
    for op, point in SAMPLE:
        assert point is None or point in op.points, (op.name, point)
