"""VM disks: qcow2 overlays on base images, made and removed with qemu-img."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import shutil
from pathlib import Path

from towerbox_core.errors import BackendError, StorageFull
from towerbox_core.subp import run

log = logging.getLogger(__name__)


GIB = 1 << 30
_NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device", as qemu-img prints it


@functools.lru_cache(maxsize=256)
def _image_info(path: str, _mtime_ns: int, _size: int) -> tuple[str, int]:
    out = run(["qemu-img", "info", "--output=json", path], code="image_unreadable").stdout
    try:
        info = json.loads(out)
        return str(info["format"]), int(info["virtual-size"])
    except (ValueError, KeyError, TypeError) as err:
        raise BackendError(
            f"qemu-img gave no format or size for {path}", code="image_unreadable"
        ) from err


def image_info(path: Path) -> tuple[str, int]:
    """A base image's format and virtual size in bytes; read once per version of the file."""
    st = path.stat()
    return _image_info(str(path), st.st_mtime_ns, st.st_size)


def image_format(path: Path) -> str:
    return image_info(path)[0]


def virtual_size_gib(path: Path) -> int:
    return -(-image_info(path)[1] // GIB)


def free_bytes(directory: Path) -> int:
    """Free space for an unprivileged writer on the filesystem of ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(directory).free


def create_overlay(base: Path, overlay: Path, size_gib: int | None = None) -> None:
    """A copy-on-write qcow2 on top of ``base``; the base is never written."""
    overlay.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        image_format(base),
        "-b",
        str(base.resolve()),
        str(overlay),
    ]
    if size_gib is not None:
        argv.append(f"{size_gib}G")
    _create(argv, overlay)
    log.info("disk overlay %s on %s", overlay, base)


def create_blank(path: Path, size_gib: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _create(["qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{size_gib}G"], path)


def _create(argv: list[str], path: Path) -> None:
    """qemu-img create; a full disk is ``StorageFull`` (qemu-img only says so in
    words), with what it wrote of the file removed."""
    try:
        run(argv, code="disk_create_failed")
    except BackendError as err:
        if _NO_SPACE not in err.message:
            raise
        path.unlink(missing_ok=True)
        raise StorageFull(
            f"cannot create the disk {path}: no space left on its disk; free space there and retry",
            path=str(path),
        ) from err


def remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
