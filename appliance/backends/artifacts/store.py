"""The artifact store: the node's image folder, where a file appears only once verified.

A download goes to ``.partial/<name>``; when its SHA-256 matches it is flushed,
fsynced and renamed to ``<name>`` (the folder fsynced too), so a reader of the image
folder never sees half a file. A file with the wrong hash moves to ``.quarantine/``
for an operator to look at. Both folders start with a dot: nothing that lists images
takes them for one.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from towerbox_core.errors import InsufficientResources

PARTIAL_DIR = ".partial"
QUARANTINE_DIR = ".quarantine"


def no_space(needed: int, free: int, name: str) -> InsufficientResources:
    return InsufficientResources(
        f"artifact {name}: {needed} bytes needed in the image folder, {free} free",
        code="insufficient_space",
        artifact=name,
        needed_bytes=needed,
        free_bytes=free,
    )


def filled_up(name: str, free: int, needed: int | None) -> InsufficientResources:
    """The disk filled during a transfer whose size was not known up front."""
    return InsufficientResources(
        f"artifact {name}: the image folder filled up during the transfer ({free} bytes "
        "free); the partial file is removed",
        code="insufficient_space",
        artifact=name,
        needed_bytes=needed,
        free_bytes=free,
    )


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial_dir = root / PARTIAL_DIR
        self.quarantine_dir = root / QUARANTINE_DIR

    def path(self, name: str) -> Path:
        return self.root / name

    def partial(self, name: str) -> Path:
        return self.partial_dir / name

    def present_size(self, name: str) -> int | None:
        """The visible file's size, or None when there is no regular file by that name."""
        try:
            st = self.path(name).stat()
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def partial_size(self, name: str) -> int:
        try:
            return self.partial(name).stat().st_size
        except OSError:
            return 0

    def free_bytes(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def require_space(self, needed: int, name: str) -> None:
        """Refuse before a byte is written when the folder cannot hold ``needed`` more."""
        free = self.free_bytes()
        if needed > free:
            raise no_space(needed, free, name)

    def open_partial(self, name: str, *, keep: bool) -> BinaryIO:
        """The partial file for writing: appended to when ``keep``, else emptied."""
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        return self.partial(name).open("ab" if keep else "wb")

    def discard_partial(self, name: str) -> None:
        self.partial(name).unlink(missing_ok=True)

    def publish(self, name: str, f: BinaryIO) -> Path:
        """Make the verified partial file visible under its name, durably."""
        f.flush()
        os.fsync(f.fileno())
        f.close()
        target = self.path(name)
        os.replace(self.partial(name), target)
        _fsync_dir(self.root)
        return target

    def quarantine(self, source: Path, name: str) -> Path:
        """Move a file whose hash is wrong out of the way; returns where it went."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.quarantine_dir / f"{name}.{stamp}"
        os.replace(source, target)
        return target

    def files(self) -> dict[str, int]:
        """Visible regular files in the folder by name, with their sizes."""
        return _regular_files(self.root, skip_hidden=True)

    def partials(self) -> dict[str, int]:
        return _regular_files(self.partial_dir, skip_hidden=False)

    def quarantined(self) -> dict[str, int]:
        return _regular_files(self.quarantine_dir, skip_hidden=False)


def _regular_files(folder: Path, *, skip_hidden: bool) -> dict[str, int]:
    result: dict[str, int] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return result
    for entry in entries:
        if skip_hidden and entry.name.startswith("."):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                result[entry.name] = entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue  # removed while we looked
    return result


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
