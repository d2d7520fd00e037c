"""crash_runs_converged: random-kill runs across the operations, all must converge.

Each run (tests/support/crash.py) starts a daemon on a copy of a prepared state,
runs one operation drawn at random (VM create, VM delete, GPU apply with a drain, N6
apply, journal compaction, a desired-state document, an artifact fetch), kills the
daemon at one of the operation's fault points or after a random delay, restarts it
and checks the node: nothing orphaned (files, vGPUs, claims, host allocations), the
journal gap-free, in step with the rows and saying what the restart repaired, the API
equal to the backends, and the operator's retry reaching what was asked with nothing
left pending. Simulated backends (libvirt test driver, simulated GPUs and N6).

Every run prints its seed; ``TOWERBOX_CRASH_SEED=<seed> ... --runs 1`` replays one.
Target (issue 15): 250 of 250 converge. ``make chaos`` runs it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from tests.support import crash_ops
from tests.support.artifact_server import artifact_server
from tests.support.crash import Harness, Operation, RunResult, crash_seed

RUNS = 250


def _operations(url: str, data: bytes, work: Path) -> list[Operation]:
    return [
        crash_ops.VM_CREATE,
        crash_ops.VM_DELETE,
        crash_ops.GPU_APPLY,
        crash_ops.N6_APPLY,
        crash_ops.COMPACTION,
        crash_ops.DESIRED_APPLY,
        crash_ops.artifact_operation(url, data, work),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    # Runs are mostly daemon start-ups: two at a time keep two cores busy.
    parser.add_argument("--workers", type=int, default=int(os.environ.get("CRASH_WORKERS", "2")))
    args = parser.parse_args()
    base = crash_seed()
    print(f"crash runs: base seed {base} (TOWERBOX_CRASH_SEED={base} replays from it)")
    work = Path(tempfile.mkdtemp(prefix="towerbox-crash-"))
    origin = work / "origin"
    origin.mkdir()
    data = os.urandom(3 * 1024 * 1024 + 7)
    (origin / "model.bin").write_bytes(data)
    results: list[RunResult] = []
    lock = threading.Lock()
    started = time.monotonic()
    with artifact_server(origin) as (url, _):
        ops = _operations(url, data, work)
        queue = list(range(args.runs))

        def worker(n: int) -> None:
            harness = Harness(work / f"worker-{n}")
            while True:
                with lock:
                    if not queue:
                        return
                    i = queue.pop(0)
                seed = base + i
                op = random.Random(seed).choice(ops)
                result = harness.run(op, seed)
                with lock:
                    results.append(result)
                    print(f"[{len(results)}/{args.runs}] {result.line()}", flush=True)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.monotonic() - started
    runs = Counter(r.op for r in results)
    converged = Counter(r.op for r in results if r.converged)
    for op in sorted(runs):
        print(f"crash_runs_converged_{op}: {converged[op]}/{runs[op]} runs")
    kills = Counter("fault point" if r.kill.startswith("at ") else "delay" for r in results)
    print(f"crash_runs_by_fault_point: {kills['fault point']} runs")
    print(f"crash_runs_by_delay: {kills['delay']} runs")
    print(f"crash_runs_s: {elapsed:.0f} s")
    total = sum(converged.values())
    print(f"crash_runs_converged: {total}/{args.runs} runs")
    if total == args.runs:
        shutil.rmtree(work, ignore_errors=True)
        return 0
    print(f"failed runs kept under {work}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
