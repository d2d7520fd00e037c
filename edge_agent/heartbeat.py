"""What each heartbeat carries: the host facts only when the registry lacks them.

A quiet site's heartbeats would otherwise repeat the same host facts four times a
minute. The agent keeps the hash of the facts the registry last acknowledged; a
heartbeat carries the full facts when the hash differs (a change on the node, or a
new agent run) and only the hash otherwise. A registry that does not hold that hash
(restored from a backup, or a new one) says so in its answer, and the next
heartbeat, sent at once, carries the facts again.
"""

from __future__ import annotations

import logging
import socket

from edge_agent import __version__
from edge_agent.appliance_link import ApplianceLink
from edge_agent.errors import Refused
from towerbox_core.api.fleet import HeartbeatReply
from towerbox_core.wire import Heartbeat, facts_hash

log = logging.getLogger(__name__)


class HeartbeatBuilder:
    def __init__(self, appliance: ApplianceLink) -> None:
        self._appliance = appliance
        self._hostname = socket.gethostname()
        self.acked_hash: str | None = None  # the facts the registry holds, as we know
        self.facts_sent = 0  # heartbeats that carried the full facts
        # The registry refused the hash and versions (one older than them, or versions
        # it cannot take): every heartbeat then has the form agents always sent.
        self.legacy = False

    async def build(self, appliance_head: int, queued: int) -> Heartbeat:
        # The appliance is local and answers from memory: asked at every heartbeat, so
        # a change is in the very next one.
        host, versions = await self._appliance.host_facts()
        host = {"hostname": self._hostname, **host}
        if self.legacy:
            return Heartbeat(__version__, appliance_head, queued, host)
        digest = facts_hash(__version__, host, versions)
        if digest == self.acked_hash:
            return Heartbeat(__version__, appliance_head, queued, facts_hash=digest)
        return Heartbeat(__version__, appliance_head, queued, host, digest, versions)

    def answered(self, beat: Heartbeat, reply: HeartbeatReply) -> bool:
        """Note the registry's answer; True when it wants the facts again at once."""
        if beat.host:
            self.facts_sent += 1
        if reply.facts_wanted:
            self.acked_hash = None
            return bool(not beat.host)  # once: a full heartbeat is never asked again
        self.acked_hash = beat.facts_hash
        return False

    def refused(self, beat: Heartbeat, err: Refused) -> bool:
        """After a refusal: True when the beat goes again at once in the older form."""
        if self.legacy or err.code != "invalid_heartbeat" or beat.facts_hash is None:
            return False
        log.warning(
            "the registry refused the heartbeat's facts hash or versions (%s); sending "
            "the host facts with every heartbeat, without versions, until the agent "
            "restarts",
            err.message,
        )
        self.legacy = True
        return True
