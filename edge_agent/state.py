"""The enrollment state: registry URL, site, secret and CA, in one 0600 file."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from towerbox_core.errors import ConfigError, StorageFull, is_disk_full


class Enrollment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    registry_url: str
    site: str
    secret: str
    ca_file: str = ""


# Room the enrollment file needs, with margin: checked before a one-time token is spent.
_ENROLLMENT_ROOM = 16 * 1024


def save_enrollment(path: Path, enrollment: Enrollment) -> None:
    """Write the file so it is 0600 from its first byte; replace it atomically."""
    tmp = _write_private(path, msgspec.json.format(msgspec.json.encode(enrollment)) + b"\n")
    os.replace(tmp, path)
    path.chmod(0o600)


def check_room(path: Path) -> None:
    """Refuse (``StorageFull``) before enrolling when the state file cannot be written:
    the registry spends the one-time token, and a secret that cannot be saved is lost."""
    _write_private(path, b"\0" * _ENROLLMENT_ROOM).unlink()


def _write_private(path: Path, data: bytes) -> Path:
    """``data`` in a 0600 temporary file beside ``path``, synced; the temporary's path.
    A full disk is ``StorageFull``, with the temporary file removed."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if not is_disk_full(err):
            raise
        raise StorageFull(
            f"cannot write {path}: the agent's state disk is full; free space there and retry",
            path=str(path.parent),
        ) from err
    return tmp


def load_enrollment(path: Path) -> Enrollment:
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ConfigError(
            f"this node is not enrolled ({path} is missing): run "
            "`towerbox agent enroll URL TOKEN` first",
            code="not_enrolled",
        ) from err
    if path.stat().st_mode & 0o077:
        raise ConfigError(
            f"{path} holds the site secret and must be mode 0600", code="insecure_state_file"
        )
    try:
        return msgspec.json.decode(data, type=Enrollment)
    except msgspec.DecodeError as err:
        raise ConfigError(f"{path} is not a valid enrollment file: {err}") from err


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as err:
        raise ConfigError(
            f"cannot read the appliance token {path}: {err}; create one with "
            "`towerbox agent token --out PATH` as root",
            code="no_agent_token",
        ) from err
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} holds a token and must be mode 0600", code="insecure_token_file")
    return token
