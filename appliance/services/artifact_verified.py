"""Which files were proven to hold their artifact, kept across restarts.

Per name: the file's (inode, size, mtime_ns) when its SHA-256 was found right, and that
SHA-256. A restart then still shows a proven file as verified, and the next window
does not hash every file again; a file changed since (any of the four differs) is not
taken as verified.
"""

from __future__ import annotations

import msgspec

from appliance.store import journal
from appliance.store.models import Meta

Proof = tuple[int, int, int, str]  # inode, size, mtime_ns, sha256

_KEY = "artifacts_verified"


def load() -> dict[str, Proof]:
    row = Meta.get_or_none(Meta.key == _KEY)
    return msgspec.json.decode(row.value, type=dict[str, Proof]) if row else {}


def save(proofs: dict[str, Proof]) -> None:
    value = msgspec.json.encode(proofs).decode()
    with journal.write_transaction():
        Meta.insert(key=_KEY, value=value).on_conflict_replace().execute()
