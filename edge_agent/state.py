"""The enrollment state: registry URL, site, secret and CA, in one 0600 file."""

from __future__ import annotations

from pathlib import Path

import msgspec

from towerbox_core.errors import ConfigError
from towerbox_core.secret_files import write_secret_file


class Enrollment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    registry_url: str
    site: str
    secret: str
    ca_file: str = ""


# Room the enrollment file needs, with margin: checked before a one-time token is spent.
_ENROLLMENT_ROOM = 16 * 1024


def save_enrollment(path: Path, enrollment: Enrollment) -> None:
    """Write the file so it is 0600 from its first byte; replace it atomically.
    A full disk is ``StorageFull``, with no partial file left."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_secret_file(path, msgspec.json.format(msgspec.json.encode(enrollment)).decode() + "\n")


def check_room(path: Path) -> None:
    """Refuse (``StorageFull``) before enrolling when the state file cannot be written:
    the registry spends the one-time token, and a secret that cannot be saved is lost."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    probe = path.with_name(path.name + ".room")
    write_secret_file(probe, "\0" * _ENROLLMENT_ROOM)
    probe.unlink()


def load_enrollment(path: Path) -> Enrollment:
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ConfigError(
            f"this node is not enrolled ({path} is missing): run "
            "`towerbox agent enroll URL TOKEN` first, or set provisioning_token_file "
            "and registry_url for the agent to enroll itself (docs/enrollment.md)",
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
