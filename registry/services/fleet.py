"""Reading what sites reported: journals, their summaries, objects, fleet-wide VMs.

Objects keep the last state their site reported, with the node time it was recorded
(``as_of``) and the site's status beside it: a site that went quiet shows its VMs as
they last were, never as failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from registry.services.sites import SiteService
from registry.store.models import (
    ConflictRow,
    JournalRow,
    ObjectRow,
    Site,
    ms_to_iso,
    now_ms,
    tuples,
)
from towerbox_core.api.fleet import (
    DesiredConflict,
    DesiredConflicts,
    FleetVm,
    FleetVms,
    SiteJournal,
    SiteJournalSummary,
    SiteObject,
    SiteObjects,
)
from towerbox_core.wire import Actor, WireEntry, journal_checksum

_decode = msgspec.json.Decoder().decode
_decode_actor = msgspec.json.Decoder(Actor).decode


def _actor(stored: str | None) -> Actor | None:
    return None if stored is None else _decode_actor(stored)


def wire_entries(query: Any) -> list[WireEntry]:
    """Journal rows (seq, kind, object_type, object_id, state, created_at, actor) as
    the node sent them."""
    return [
        WireEntry(seq, kind, object_type, object_id, _decode(state), created_at, _actor(actor))
        for seq, kind, object_type, object_id, state, created_at, actor in tuples(query)
    ]


class FleetService:
    def __init__(self, sites: SiteService) -> None:
        self._sites = sites

    def journal(self, site_name: str, after: int, limit: int) -> SiteJournal:
        site = self._sites.get(site_name)
        query = (
            JournalRow.select(
                JournalRow.seq,
                JournalRow.kind,
                JournalRow.object_type,
                JournalRow.object_id,
                JournalRow.state,
                JournalRow.created_at,
                JournalRow.actor,
            )
            .where(JournalRow.site == site.id, JournalRow.seq > after)
            .order_by(JournalRow.seq)
            .limit(limit)
        )
        return SiteJournal(
            site=site.name,
            acked_seq=site.acked_seq,
            compacted_through=site.compacted_through,
            entries=wire_entries(query),
        )

    def summary(self, site_name: str, through: int | None) -> SiteJournalSummary:
        """count, head and checksum as the node's /journal/summary computes them."""
        site = self._sites.get(site_name)
        query = JournalRow.select(
            JournalRow.seq,
            JournalRow.kind,
            JournalRow.object_type,
            JournalRow.object_id,
            JournalRow.state,
            JournalRow.actor,
        ).where(JournalRow.site == site.id)
        if through is not None:
            query = query.where(JournalRow.seq <= through)
        count = 0
        head = 0

        def entries() -> Iterator[WireEntry]:
            nonlocal count, head
            rows = tuples(query.order_by(JournalRow.seq))
            for seq, kind, object_type, object_id, state, actor in rows:
                count += 1
                head = seq
                yield WireEntry(
                    seq, kind, object_type, object_id, _decode(state), actor=_actor(actor)
                )

        checksum = journal_checksum(entries())
        return SiteJournalSummary(site=site.name, count=count, head=head, checksum=checksum)

    def objects(
        self, site_name: str, object_type: str | None, limit: int, offset: int
    ) -> SiteObjects:
        site = self._sites.get(site_name)
        query = ObjectRow.select(
            ObjectRow.object_type,
            ObjectRow.object_id,
            ObjectRow.state,
            ObjectRow.seq,
            ObjectRow.as_of,
        ).where(ObjectRow.site == site.id)
        if object_type:
            query = query.where(ObjectRow.object_type == object_type)
        total = query.count()
        rows = (
            query.order_by(ObjectRow.object_type, ObjectRow.object_id).limit(limit).offset(offset)
        )
        return SiteObjects(
            site=site.name,
            status=self._sites.status.of(site.last_contact, now_ms()),
            last_contact=ms_to_iso(site.last_contact),
            total=total,
            objects=[
                SiteObject(object_type=t, object_id=i, state=_decode(s), seq=q, as_of=a)
                for t, i, s, q, a in tuples(rows)
            ],
        )

    def vms(
        self,
        site: str | None,
        state: str | None,
        tenant: str | None,
        role: str | None,
        limit: int,
        offset: int,
    ) -> FleetVms:
        query = ObjectRow.select().where(ObjectRow.object_type == "vm")
        if site:
            query = query.where(ObjectRow.site == self._sites.get(site).id)
        if state:
            query = query.where(ObjectRow.status == state)
        if tenant:
            query = query.where(ObjectRow.tenant == tenant)
        if role:
            query = query.where(ObjectRow.role == role)
        total = query.count()
        rows = (
            query.select(
                ObjectRow.site,
                ObjectRow.object_id,
                ObjectRow.name,
                ObjectRow.status,
                ObjectRow.tenant,
                ObjectRow.role,
                ObjectRow.seq,
                ObjectRow.as_of,
            )
            .order_by(ObjectRow.site, ObjectRow.object_id)
            .limit(limit)
            .offset(offset)
        )
        now = now_ms()
        sites = {
            sid: (name, self._sites.status.of(contact, now))
            for sid, name, contact in tuples(Site.select(Site.id, Site.name, Site.last_contact))
        }
        return FleetVms(
            total=total,
            limit=limit,
            offset=offset,
            vms=[
                FleetVm(
                    site=sites[sid][0],
                    site_status=sites[sid][1],
                    id=object_id,
                    name=name,
                    state=status,
                    tenant=tenant_,
                    role=role_,
                    seq=seq,
                    as_of=as_of,
                )
                for sid, object_id, name, status, tenant_, role_, seq, as_of in tuples(rows)
            ],
        )

    def conflicts(
        self, site: str | None, kind: str | None, limit: int, offset: int
    ) -> DesiredConflicts:
        query = ConflictRow.select(ConflictRow, Site.name).join(Site)
        if site:
            query = query.where(ConflictRow.site == self._sites.get(site).id)
        if kind:
            query = query.where(ConflictRow.kind == kind)
        total = query.count()
        rows = query.order_by(ConflictRow.site, ConflictRow.seq.desc()).limit(limit).offset(offset)
        return DesiredConflicts(
            total=total,
            conflicts=[
                DesiredConflict(
                    site=r.site.name,
                    seq=r.seq,
                    kind=r.kind,
                    result=r.result,
                    version=r.version,
                    etag=r.etag,
                    reason=r.reason,
                    detail=_decode(r.detail),
                    created_at=r.created_at,
                )
                for r in rows
            ],
        )
