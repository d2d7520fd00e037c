"""The registry's blob store: files under ``<state_dir>/blobs`` named by their SHA-256.

An upload is written to a temporary file in ``blobs/.tmp`` while it is hashed; only a
file whose hash is the one it was uploaded as is fsynced and renamed to
``blobs/<sha256>`` (the folder fsynced too), and only then does its ``blob`` row
exist. A reader therefore never sees part of a blob, and a cut or refused upload
leaves nothing behind. With workers on several hosts the folder must be shared.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from registry.store.models import BlobRow, ms_to_iso
from towerbox_core.api.blobs import SHA256_RE, BlobInfo, BlobList
from towerbox_core.errors import InsufficientResources, InvalidInput, NotFound, TowerboxError

log = logging.getLogger(__name__)

TMP_DIR = ".tmp"
_RANGE_RE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class BlobTooLarge(TowerboxError):
    code = "blob_too_large"
    status = 413


class RangeNotSatisfiable(TowerboxError):
    code = "range_not_satisfiable"
    status = 416


def check_sha256(value: str) -> str:
    sha = value.strip().lower()
    if not SHA256_RE.match(sha):
        raise InvalidInput(
            f"{value[:80]!r} is not a SHA-256 (64 hex digits)",
            code="invalid_sha256",
            field="sha256",
        )
    return sha


def check_blob_name(value: str) -> str:
    if len(value) > 255 or not value.isprintable():
        raise InvalidInput(
            "a blob's name is printable text of at most 255 characters",
            code="invalid_name",
            field="name",
        )
    return value


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte a ``Range`` header asks for; None: the whole blob.

    One ``bytes=`` range (``N-``, ``N-M`` or the suffix ``-N``); other units and
    multipart requests are answered whole, as RFC 9110 allows. A range that selects
    nothing, or a malformed ``bytes=`` one, raises ``RangeNotSatisfiable``.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    m = _RANGE_RE.match(spec)
    if m is None or (not m.group(1) and not m.group(2)):
        raise RangeNotSatisfiable(f"malformed range {header[:80]!r}", size=size)
    if not m.group(1):
        suffix = int(m.group(2))
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"range {header!r} selects no byte", size=size)
        return max(size - suffix, 0), size - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        raise RangeNotSatisfiable(f"range {header!r} is outside the blob's {size} bytes", size=size)
    return first, min(last, size - 1)


class BlobWriter:
    """One upload under way: a temporary file, hashed as it is written."""

    def __init__(self, store: BlobService, sha256: str) -> None:
        self.store = store
        self.sha256 = sha256
        self.size = 0
        self._hash = hashlib.sha256()
        store.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix=sha256[:16] + ".")
        self.path = Path(name)
        self._f = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.store.max_bytes:
            raise BlobTooLarge(
                f"a blob is at most {self.store.max_bytes} bytes", max_bytes=self.store.max_bytes
            )
        try:
            self._f.write(chunk)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientResources(
                    f"the registry's blob folder filled up after {self.size} bytes",
                    code="insufficient_space",
                ) from err
            raise
        self._hash.update(chunk)

    def finish(self) -> Path:
        """Verify, make durable and publish as ``blobs/<sha256>``; refuse a wrong hash."""
        got = self._hash.hexdigest()
        if got != self.sha256:
            self.discard()
            raise InvalidInput(
                f"the uploaded bytes are not blob {self.sha256}: expected {self.sha256}, got {got}",
                code="blob_hash_mismatch",
                expected=self.sha256,
                got=got,
                size=self.size,
            )
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        target = self.store.path(self.sha256)
        os.replace(self.path, target)
        self.store.match_owner(target)
        _fsync_dir(self.store.root)
        return target

    def discard(self) -> None:
        """Drop the temporary file (idempotent): on a refusal, a cut, any failure."""
        self._f.close()
        self.path.unlink(missing_ok=True)


class BlobService:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.tmp_dir = root / TMP_DIR
        self.max_bytes = max_bytes

    def path(self, sha256: str) -> Path:
        return self.root / check_sha256(sha256)

    def begin(self, sha256: str) -> BlobWriter:
        if not self.root.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            self.match_owner(self.root)
        return BlobWriter(self, check_sha256(sha256))

    def sweep_tmp(self, older_than_s: float = 24 * 3600) -> int:
        """Remove temporary files of uploads that a crash or power loss left behind.

        Only old ones: another worker (or host sharing the folder) may be receiving
        an upload right now. Returns how many were removed.
        """
        removed = 0
        cutoff = time.time() - older_than_s
        try:
            entries = list(os.scandir(self.tmp_dir))
        except OSError:
            return 0
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue  # finished or removed while we looked
        if removed:
            log.warning("removed %d abandoned blob upload(s) from %s", removed, self.tmp_dir)
        return removed

    def match_owner(self, path: Path) -> None:
        """A blob written by root (the CLI) stays readable and removable by the server:
        it gets the owner of the state folder above the blob folder."""
        if os.geteuid() != 0:
            return
        st = self.root.parent.stat()
        os.chown(path, st.st_uid, st.st_gid)

    # -- rows (one short transaction each) ----------------------------------------------

    def find(self, sha256: str) -> BlobInfo | None:
        """The blob when both its row and its file are there."""
        row = BlobRow.get_or_none(BlobRow.sha256 == check_sha256(sha256))
        if row is None or not self.path(row.sha256).is_file():
            return None
        return _info(row)

    def get(self, sha256: str) -> BlobInfo:
        found = self.find(sha256)
        if found is None:
            raise NotFound(f"no blob {sha256[:80]}", code="blob_not_found", sha256=sha256[:80])
        return found

    def record(self, sha256: str, size: int, name: str, uploaded_by: str) -> BlobInfo:
        """The row of a blob whose file was just published (an existing row stays)."""
        BlobRow.insert(
            sha256=sha256, size=size, name=name, uploaded_by=uploaded_by
        ).on_conflict_ignore().execute()
        return _info(BlobRow.get(BlobRow.sha256 == sha256))

    def list(self) -> BlobList:
        rows = list(BlobRow.select().order_by(BlobRow.created_at, BlobRow.sha256))
        blobs = [_info(r) for r in rows]
        return BlobList(blobs=blobs, total_bytes=sum(b.size for b in blobs))

    def remove(self, sha256: str) -> None:
        sha = check_sha256(sha256)
        deleted = BlobRow.delete().where(BlobRow.sha256 == sha).execute()
        path = self.path(sha)
        if not deleted and not path.exists():
            raise NotFound(f"no blob {sha}", code="blob_not_found", sha256=sha)
        # A download under way keeps its open file; new ones find nothing.
        path.unlink(missing_ok=True)
        log.info("blob %s removed", sha)

    def upload_file(
        self,
        source: Path,
        name: str,
        uploaded_by: str,
        progress: Callable[[int], None] = lambda n: None,
    ) -> tuple[BlobInfo, bool]:
        """Copy a local file in (the CLI): hash it, then store it under its hash.

        Returns the blob and whether it is new; an existing blob is not copied again.
        """
        name = check_blob_name(name)
        sha = file_sha256(source)
        existing = self.find(sha)
        if existing is not None:
            return existing, False
        writer = self.begin(sha)
        try:
            with source.open("rb") as f:
                while chunk := f.read(1 << 20):
                    writer.write(chunk)
                    progress(len(chunk))
            writer.finish()
        except BaseException:
            writer.discard()
            raise
        return self.record(sha, writer.size, name, uploaded_by), True


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _info(row: BlobRow) -> BlobInfo:
    return BlobInfo(
        sha256=row.sha256,
        size=row.size,
        name=row.name,
        uploaded_by=row.uploaded_by,
        created_at=ms_to_iso(row.created_at),
    )


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
