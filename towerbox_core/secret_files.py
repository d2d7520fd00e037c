"""Secrets at rest: files that are 0600 from their first byte, and hashed tokens."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from towerbox_core.errors import StorageFull, is_disk_full


def write_secret_file(path: Path, content: str) -> None:
    """Write a secret so that it is 0600 from its first byte on disk; replace it whole.

    A full disk is ``StorageFull``, with the file as it was and no partial one beside it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if not is_disk_full(err):
            raise
        raise StorageFull(
            f"cannot write {path}: its disk is full; free space there and retry",
            path=str(path.parent),
        ) from err
    os.replace(tmp, path)
    path.chmod(0o600)


def hash_token(token: str) -> str:
    """What a database keeps of a token or site secret: its SHA-256, hex.

    A token is 256 random bits, so a fast hash is enough; passwords use the KDF in
    ``towerbox_core.accounts``.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    """A fresh bearer token: the prefix that says which program issued it, 256 bits."""
    return prefix + secrets.token_urlsafe(32)
