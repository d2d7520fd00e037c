"""The agent hands desired documents over in kind order (tenants before vnets), and
hands a refused kind over again once a tenants document went through."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from edge_agent.appliance_link import ApplianceLink
from edge_agent.desired import DesiredPuller
from edge_agent.errors import Refused
from edge_agent.registry_link import RegistryLink
from towerbox_core.wire import DesiredDocument, DesiredIndexItem


class FakeRegistry:
    def __init__(self) -> None:
        self.etags: dict[str, str] = {}

    async def desired(self, kind: str, etag: str | None) -> DesiredDocument | None:
        current = self.etags[kind]
        if etag == current:
            return None
        return DesiredDocument(kind=kind, etag=current, version=1, source="site", document={})


class FakeAppliance:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.tenants = False

    async def hand_over(self, doc: DesiredDocument) -> dict[str, Any]:
        self.seen.append(doc.kind)
        if doc.kind == "tenants":
            self.tenants = True
        if doc.kind == "vnets" and not self.tenants:
            raise Refused("appliance", 422, {"code": "unknown_tenant"})
        return {"result": "applied"}


def _index(registry: FakeRegistry, **etags: str) -> list[DesiredIndexItem]:
    registry.etags.update(etags)
    return [DesiredIndexItem(kind=k, etag=e, version=1, source="site") for k, e in etags.items()]


def test_tenants_go_before_vnets_and_a_refused_kind_is_retried_after_tenants() -> None:
    registry, appliance = FakeRegistry(), FakeAppliance()
    puller = DesiredPuller(cast(ApplianceLink, appliance), cast(RegistryLink, registry))
    asyncio.run(puller.sync(_index(registry, vnets="v1", catalog="c1", tenants="t1")))
    assert appliance.seen == ["tenants", "vnets", "catalog"]

    registry2, appliance2 = FakeRegistry(), FakeAppliance()
    puller = DesiredPuller(cast(ApplianceLink, appliance2), cast(RegistryLink, registry2))
    asyncio.run(puller.sync(_index(registry2, vnets="v1")))
    assert puller.refused == {"vnets"}
    # The same vnets ETag is not handed over again on its own...
    asyncio.run(puller.sync(_index(registry2, vnets="v1")))
    assert appliance2.seen == ["vnets"]
    # ...but it is once a tenants document went through.
    asyncio.run(puller.sync(_index(registry2, vnets="v1", tenants="t1")))
    assert appliance2.seen == ["vnets", "tenants", "vnets"]
    assert puller.refused == set()
