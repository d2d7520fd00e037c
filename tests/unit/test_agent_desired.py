"""The agent hands desired documents over in kind order (tenants before vnets, services
last), and hands a refused kind over again once a tenants, vnets or catalog document
went through."""

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


class CatalogFirst(FakeAppliance):
    """Refuses a services document until a catalog document went through."""

    def __init__(self) -> None:
        super().__init__()
        self.catalog = False

    async def hand_over(self, doc: DesiredDocument) -> dict[str, Any]:
        self.seen.append(doc.kind)
        self.catalog = self.catalog or doc.kind == "catalog"
        if doc.kind == "services" and not self.catalog:
            raise Refused("appliance", 422, {"code": "unknown_catalog_entry"})
        return {"result": "applied"}


def test_services_go_last_and_are_retried_after_a_catalog_document() -> None:
    registry, appliance = FakeRegistry(), FakeAppliance()
    puller = DesiredPuller(cast(ApplianceLink, appliance), cast(RegistryLink, registry))
    index = _index(registry, services="s1", catalog="c1", vnets="v1", tenants="t1", gpu="g1")
    asyncio.run(puller.sync(index))
    assert appliance.seen == ["gpu", "tenants", "vnets", "catalog", "services"]

    registry2, appliance2 = FakeRegistry(), CatalogFirst()
    puller = DesiredPuller(cast(ApplianceLink, appliance2), cast(RegistryLink, registry2))
    asyncio.run(puller.sync(_index(registry2, services="s1")))
    assert puller.refused == {"services"}
    asyncio.run(puller.sync(_index(registry2, services="s1", catalog="c1")))
    assert appliance2.seen == ["services", "catalog", "services"]
    assert puller.refused == set()
