"""VM disks: qcow2 overlays on base images, made and removed with qemu-img."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from towerbox_core.errors import BackendError
from towerbox_core.subp import run

log = logging.getLogger(__name__)


def image_format(path: Path) -> str:
    out = run(["qemu-img", "info", "--output=json", str(path)], code="image_unreadable").stdout
    try:
        fmt = json.loads(out)["format"]
    except (ValueError, KeyError) as err:
        raise BackendError(f"qemu-img gave no format for {path}", code="image_unreadable") from err
    return str(fmt)


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
    run(argv, code="disk_create_failed")
    log.info("disk overlay %s on %s", overlay, base)


def create_blank(path: Path, size_gib: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{size_gib}G"],
        code="disk_create_failed",
    )


def remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
