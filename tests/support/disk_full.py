"""A small filesystem to fill: a tmpfs mounted for one test, and a filler file."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHUNK = 64 * 1024


@contextmanager
def small_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """``directory`` (made if missing) as a tmpfs of ``size`` ("6m") for the block."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield directory
    finally:
        # Processes and worker threads may hold files there a moment longer: detach
        # now, the kernel frees the tmpfs when the last one is closed.
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def fill(directory: Path, leave_bytes: int = 0) -> Path:
    """Fill the filesystem of ``directory`` to the last byte, then give back
    ``leave_bytes``; the filler file (remove it and the space returns)."""
    filler = directory / "filler"
    with filler.open("wb") as f:
        while (free := free_bytes(directory)) > 0:
            f.write(b"\0" * min(CHUNK, free))
            f.flush()
    if leave_bytes:
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - (leave_bytes - free_bytes(directory))))
    return filler
