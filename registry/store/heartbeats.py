"""Storing a heartbeat: contact and journal head always, host facts when it has them.

A quiet site sends its host facts only when they change (towerbox_core.wire.Heartbeat):
most heartbeats carry a hash of them, and one conditional UPDATE both records the
contact and proves the registry holds those facts. When it does not (the row matched
no hash: a restored database, facts never received), the contact is recorded all the
same and the answer asks the agent for the facts.
"""

from __future__ import annotations

import msgspec

from registry.store import sql
from registry.store.models import now_ms
from towerbox_core.api.versions import NodeVersions, valid_version
from towerbox_core.wire import Heartbeat, facts_hash

# The heartbeat column keeps the beat without its facts; host_facts keeps those.
_CONTACT = sql.HEARTBEAT
_CONTACT_SAME_FACTS = _CONTACT.removesuffix("WHERE id = ?") + "WHERE id = ? AND facts_hash = ?"
# Agents before the hash send their facts (with an uptime) every time: the facts are
# written each time, the indexed version columns only when the agent's version changed.
_CONTACT_WITH_HOST = (
    "UPDATE site SET last_contact = ?, heartbeat = ?, reported_head = ?, host_facts = ?, "
    "facts_hash = NULL WHERE id = ?"
)
_OLD_AGENT_VERSION = (
    "UPDATE site SET agent_version = ?, towerbox_version = NULL, gpu_driver_version = NULL, "
    "vgpu_manager_version = NULL WHERE id = ? AND (agent_version IS NULL OR agent_version <> ?)"
)
_CONTACT_WITH_FACTS = (
    "UPDATE site SET last_contact = ?, heartbeat = ?, reported_head = ?, host_facts = ?, "
    "facts_hash = ?, towerbox_version = ?, agent_version = ?, gpu_driver_version = ?, "
    "vgpu_manager_version = ? WHERE id = ?"
)


def record(site_id: int, beat: Heartbeat) -> bool:
    """Store one heartbeat; True when the registry lacks the facts it only hashed."""
    now = now_ms()
    thin = msgspec.json.encode(
        msgspec.structs.replace(beat, host={}, versions=None) if beat.host else beat
    ).decode()
    if not beat.carries_facts:
        params = (now, thin, beat.appliance_head, site_id)
        if sql.execute(_CONTACT_SAME_FACTS, (*params, beat.facts_hash)):
            return False
        sql.execute(_CONTACT, params)
        return True
    host = msgspec.json.encode(beat.host).decode()
    if beat.facts_hash is None:
        sql.execute(_CONTACT_WITH_HOST, (now, thin, beat.appliance_head, host, site_id))
        # The route refused a malformed agent version: this one fits the column.
        sql.execute(_OLD_AGENT_VERSION, (beat.agent_version, site_id, beat.agent_version))
        return False
    versions = beat.versions or NodeVersions()
    sql.execute(
        _CONTACT_WITH_FACTS,
        (
            now,
            thin,
            beat.appliance_head,
            host,
            # Computed here, not taken from the agent: the stored hash fits the facts.
            facts_hash(beat.agent_version, beat.host, beat.versions),
            _version(versions.towerbox),
            _version(beat.agent_version),
            _version(versions.gpu_driver),
            _version(versions.vgpu_manager),
            site_id,
        ),
    )
    return False


def _version(text: str | None) -> str | None:
    # The route refuses malformed versions already; a column never holds one.
    return text if text is not None and valid_version(text) else None
