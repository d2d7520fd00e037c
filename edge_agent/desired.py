"""Desired state down: fetch a changed document by ETag, hand it to the appliance.

The registry's heartbeat answer lists each kind's current ETag; a kind whose ETag
differs from the last one handed over is fetched (If-None-Match) and posted to the
appliance, which validates, applies and journals the outcome. A refusal by the
appliance is an outcome too: it is journalled there, and the agent does not retry
the same ETag. A link failure is not: the next heartbeat tries again.
"""

from __future__ import annotations

import logging

from edge_agent.appliance_link import ApplianceLink
from edge_agent.errors import Refused, Unreachable
from edge_agent.registry_link import RegistryLink
from towerbox_core.wire import DESIRED_KINDS, DesiredIndexItem

log = logging.getLogger(__name__)

# Kinds that bring what another kind's refused document may have lacked (a tenant, a
# VNet, a catalog entry): once one is applied, refused kinds are handed over again.
_BRINGERS = ("tenants", "vnets", "catalog")


class DesiredPuller:
    def __init__(self, appliance: ApplianceLink, registry: RegistryLink) -> None:
        self._appliance = appliance
        self._registry = registry
        self.handed_over: dict[str, str] = {}  # kind -> ETag the appliance has answered
        self.refused: set[str] = set()  # kinds whose handed-over ETag the appliance refused

    async def sync(self, index: list[DesiredIndexItem]) -> None:
        order = {kind: i for i, kind in enumerate(DESIRED_KINDS)}
        for item in sorted(index, key=lambda i: order.get(i.kind, len(order))):
            if self.handed_over.get(item.kind) == item.etag:
                continue
            try:
                doc = await self._registry.desired(item.kind, self.handed_over.get(item.kind))
                if doc is None:
                    continue
                try:
                    result = await self._appliance.hand_over(doc)
                    log.info("desired %s v%d: %s", doc.kind, doc.version, result.get("result", "?"))
                    self.refused.discard(doc.kind)
                    if doc.kind in _BRINGERS:
                        for kind in self.refused:
                            self.handed_over.pop(kind, None)
                except Refused as err:
                    if err.where != "appliance":
                        raise
                    log.warning(
                        "desired %s v%d refused by the appliance: %s",
                        doc.kind,
                        doc.version,
                        err.message,
                    )
                    self.refused.add(doc.kind)
                self.handed_over[doc.kind] = doc.etag
            except (Unreachable, Refused) as err:
                log.warning("desired %s not synced this time: %s", item.kind, err.message)
