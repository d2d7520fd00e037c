"""Crash runs on the system libvirtd with QEMU: the VM create and delete killed
mid-way, where libvirt's domains outlive the killed daemon (unlike the test driver's),
so an orphan domain would show. The checks are those of tests/support/crash.py plus
"every domain this node owns has a row"; the runs' domains are removed after each.

A GPU apply's drain touches libvirt only for a VM that holds a MIG slice, which reaches
a real QEMU only as an NVIDIA vGPU: with simulated GPUs the node refuses such a VM on
a real libvirtd (``vgpu_unavailable``), so GPU applies are crash-run on the simulated
backends (test_crash_consistency.py) and not here."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from tests.support import crash_ops
from tests.support.appliance import REAL_HOST, REPO
from tests.support.crash import Harness, Operation, crash_seed
from towerbox_core.subp import run

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]

SAMPLE = [
    (crash_ops.VM_CREATE, "vm.create.after_overlay"),
    (crash_ops.VM_CREATE, "vm.create.after_define"),
    (crash_ops.VM_CREATE, "vm.create.after_start"),
    (crash_ops.VM_DELETE, "vm.delete.after_destroy"),
    (crash_ops.VM_DELETE, "vm.delete.after_undefine"),
]


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    try:
        libvirt.open(SYSTEM_URI).close()
    except libvirt.libvirtError as err:
        pytest.skip(f"{SYSTEM_URI} is not available: {err}")
    image_dir = Path(os.environ.get("TOWERBOX_IMAGE_DIR", REPO / "var" / "images"))
    run([str(REPO / "images" / "demo" / "build.sh"), str(image_dir)], timeout=600)
    # QEMU runs as its own user: the disks must be readable by it.
    work = Path(tempfile.mkdtemp(prefix="towerbox-crash-", dir="/var/tmp"))
    work.chmod(0o755)
    env = {
        "TOWERBOX_LIBVIRT_URI": SYSTEM_URI,
        "TOWERBOX_IMAGE_DIR": str(image_dir),
        "TOWERBOX_NODE_NAME": f"crash-{os.getpid()}",
        "TOWERBOX_GPU_SIMULATED_VGPU": "false",
        **REAL_HOST,
    }
    yield Harness(work, env)
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize(("op", "point"), SAMPLE, ids=[p for _, p in SAMPLE])
def test_a_killed_vm_operation_leaves_no_orphan_domain(
    harness: Harness, op: Operation, point: str
) -> None:
    result = harness.run_at(op, point, crash_seed())
    assert result.converged, result.line()
