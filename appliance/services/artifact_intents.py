"""Fetches asked for now outlive the daemon.

An explicit fetch ("fetch now") is written down when it is asked for and crossed out
in the transaction that journals its outcome. A daemon that stopped or crashed in
between finds it at its next start and fetches it again, resuming from the partial
file the transfer kept. Pre-cache fetches are not written down: the next off-peak
window starts them again by itself.
"""

from __future__ import annotations

import msgspec

from appliance.store import journal
from appliance.store.models import Meta

_KEY = "artifact_fetches_asked"


def asked() -> list[str]:
    """The artifacts whose fetch was asked for and has not ended."""
    row = Meta.get_or_none(Meta.key == _KEY)
    return msgspec.json.decode(row.value, type=list[str]) if row else []


def ask(name: str) -> None:
    with journal.write_transaction():
        names = asked()
        if name not in names:
            _save([*names, name])


def settle(name: str) -> None:
    """Cross ``name`` out; call it inside the transaction that journals the outcome."""
    names = asked()
    if name in names:
        _save([n for n in names if n != name])


def _save(names: list[str]) -> None:
    if names:
        Meta.insert(
            key=_KEY, value=msgspec.json.encode(names).decode()
        ).on_conflict_replace().execute()
    else:
        Meta.delete().where(Meta.key == _KEY).execute()
