"""``towerbox registry blob upload|list|remove``: the registry's artifact origin.

Uploading is an operator action on the registry's host, like the other administration
commands: the file is hashed, copied into the blob folder under its SHA-256 and
recorded, with the same checks as ``PUT /api/v1/blobs/{sha256}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

import msgspec

from towerbox_core.commands import table

if TYPE_CHECKING:
    from registry.context import Registry

_PROGRESS_FROM = 64 * 1024 * 1024  # smaller files copy too fast to need it


class _Progress:
    """``copied 40% (1.2 GiB of 3.0 GiB)`` on stderr, at most twice a second."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._shown = 0.0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.total < _PROGRESS_FROM or (now - self._shown < 0.5 and self.done < self.total):
            return
        self._shown = now
        pct = 100 * self.done // max(self.total, 1)
        sys.stderr.write(f"\rcopied {pct}% ({_gib(self.done)} of {_gib(self.total)})")
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def blob_command(args: argparse.Namespace, registry: Registry) -> Any:
    from towerbox_core.errors import InvalidInput

    blobs = registry.blobs
    if args.blob_command == "upload":
        path = args.file
        if not path.is_file():
            raise InvalidInput(f"{path} is not a file", code="not_a_file", field="file")
        if path.stat().st_size >= _PROGRESS_FROM:
            sys.stderr.write(f"hashing {path} ...\n")
        info, created = blobs.upload_file(
            path, args.name or path.name, "cli", _Progress(path.stat().st_size)
        )
        if args.json:
            return info
        verb = "stored" if created else "already stored"
        return (
            f"{verb}: {info.sha256} ({info.size} bytes, {info.name})\n"
            f'a catalog artifact names it as url = "registry:{info.sha256}"\n'
        )
    if args.blob_command == "list":
        found = blobs.list()
        if args.json:
            return found
        rows = msgspec.to_builtins(found.blobs)
        columns = ("sha256", "size", "name", "uploaded_by", "created_at")
        return table(rows, columns) + f"\n{len(rows)} blob(s), {found.total_bytes} bytes\n"
    blobs.remove(args.sha256)
    return f"removed blob {args.sha256}\n"
