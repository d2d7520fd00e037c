"""Whether an entry's image files are in the node's image folder, with the right hash."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path
from typing import Any

from appliance.catalog.model import CatalogEntry

_HASH_CHUNK = 1 << 20
_HASH_CACHE_MAX = 64


def image_status(entry: CatalogEntry, image_dir: Path) -> dict[str, Any]:
    """Whether the entry's image files (and model file) are in ``image_dir`` and
    ``file`` has its hash.

    Hashing a large disk image takes a while the first time (the result is kept per
    file identity, size and mtime): call this from a worker thread.
    """
    names = [entry.image.file]
    if entry.image.initrd is not None:
        names.append(entry.image.initrd)
    if entry.model_file is not None:
        names.append(entry.model_file)
    files: dict[str, dict[str, Any]] = {}
    for file_name in names:
        try:
            st = (image_dir / file_name).stat()
        except OSError:
            files[file_name] = {"present": False, "size_bytes": None}
            continue
        regular = stat.S_ISREG(st.st_mode)
        files[file_name] = {"present": regular, "size_bytes": st.st_size if regular else None}
    present = all(f["present"] for f in files.values())
    result: dict[str, Any] = {"present": present, "files": files, "sha256_ok": None}
    if present and entry.image.sha256 is not None:
        try:
            digest = file_sha256(image_dir / entry.image.file)
        except OSError as err:
            result["error"] = f"cannot hash {entry.image.file}: {err.strerror}"
        else:
            result["sha256_ok"] = digest == entry.image.sha256.lower()
    return result


_hash_cache: dict[tuple[str, int, int, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks; unchanged files are not read again."""
    with path.open("rb") as f:
        st = os.fstat(f.fileno())
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _hash_lock:
            cached = _hash_cache.get(key)
        if cached is not None:
            return cached
        digest = hashlib.sha256()
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    with _hash_lock:
        if len(_hash_cache) >= _HASH_CACHE_MAX:
            _hash_cache.clear()
        _hash_cache[key] = hexdigest
    return hexdigest
