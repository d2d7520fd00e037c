"""Journal epochs: a site re-bound to a new node starts its journal again from seq 1.

The live ``journal`` table keeps its (site, seq) key, so ingest's hot path does not
change. Re-binding moves the ended epoch's rows into ``journal_archive`` (keyed by
site, epoch, seq) in one transaction that holds the site's write lock, records the
epoch in ``site_epoch``, and resets what was folded from it (objects, conflicts,
acked_seq, compacted_through). Moving rows costs one pass over the site's journal,
once per replacement of a server; an epoch column on ``journal`` would instead have
changed its primary key, a table rebuild on SQLite and a wider key on every insert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import peewee

from registry.store import sql
from registry.store.models import (
    ConflictRow,
    EnrollmentToken,
    JournalRow,
    ObjectRow,
    Site,
    SiteEpoch,
    SiteIdentity,
    db_proxy,
    ms_to_iso,
)
from towerbox_core.api.provisioning import JournalEpoch

_RESTART_ROLLOUT_SEQ = "UPDATE rollout_site SET release_seq = 0 WHERE site_id = ?"
_ARCHIVE = (
    "INSERT INTO journal_archive (site_id, epoch, seq, kind, object_type, object_id, state, "
    "created_at, actor) SELECT site_id, ?, seq, kind, object_type, object_id, state, "
    "created_at, actor FROM journal WHERE site_id = ?"
)


@dataclass(frozen=True)
class EpochStarted:
    previous: int
    epoch: int
    archived: int


def write_transaction() -> Any:
    """A transaction that writes: on SQLite the write lock is taken up front, so a read
    followed by a write never fails to upgrade."""
    db = db_proxy.obj
    if isinstance(db, peewee.SqliteDatabase):
        return db.atomic(lock_type="IMMEDIATE")
    return db.atomic()


def lock_site(site_id: int) -> None:
    """Hold the site's row until the transaction ends (PostgreSQL; SQLite's write
    transaction holds the whole file already): ingest, re-binding and provisioning
    of one site run one after the other."""
    if not isinstance(db_proxy.obj, peewee.SqliteDatabase):
        sql.fetchone(sql.SITE_HEAD_FOR_UPDATE, (site_id,))


def start_new_epoch(site_id: int, now: int) -> EpochStarted:
    """End the site's current epoch and start the next; call inside a transaction.

    The old node's secret stops working, its unused enrollment tokens go, its bound
    identity is released; its journal is archived, never dropped.
    """
    # The site's row lock first (as ingest takes it): no batch lands between the copy
    # and the delete below.
    lock_site(site_id)
    site = Site.get_by_id(site_id)
    bound = SiteIdentity.get_or_none(
        (SiteIdentity.site == site_id) & (SiteIdentity.state == "bound")
    )
    archived = sql.execute(_ARCHIVE, (site.epoch, site_id))
    SiteEpoch.create(
        site=site_id,
        epoch=site.epoch,
        hostname=site.hostname,
        hardware_id=bound.hardware_id if bound else None,
        started_at=site.enrolled_at,
        ended_at=now,
        acked_seq=site.acked_seq,
        compacted_through=site.compacted_through,
        entries=max(archived, 0),
    )
    for model in (JournalRow, ObjectRow, ConflictRow):
        model.delete().where(model.site == site_id).execute()
    # A rollout judges alerts by journal seq after the site's release: the new node
    # counts from 1 again, so everything it journals is after that release.
    sql.execute(_RESTART_ROLLOUT_SEQ, (site_id,))
    EnrollmentToken.delete().where(
        (EnrollmentToken.site == site_id) & EnrollmentToken.used_at.is_null()
    ).execute()
    SiteIdentity.delete().where(
        (SiteIdentity.site == site_id) & (SiteIdentity.state == "bound")
    ).execute()
    Site.update(
        epoch=site.epoch + 1,
        acked_seq=0,
        compacted_through=0,
        reported_head=None,
        secret_hash=None,
        enrolled_at=None,
        hostname="",
        heartbeat=None,
        last_contact=None,
    ).where(Site.id == site_id).execute()
    return EpochStarted(previous=site.epoch, epoch=site.epoch + 1, archived=max(archived, 0))


def epochs(site: Site) -> list[JournalEpoch]:
    """The site's ended epochs, oldest first, then the current one."""
    ended = SiteEpoch.select().where(SiteEpoch.site == site.id).order_by(SiteEpoch.epoch)
    found = [
        JournalEpoch(
            epoch=e.epoch,
            current=False,
            hostname=e.hostname,
            hardware_id=e.hardware_id,
            started_at=ms_to_iso(e.started_at),
            ended_at=ms_to_iso(e.ended_at),
            acked_seq=e.acked_seq,
            compacted_through=e.compacted_through,
            entries=e.entries,
        )
        for e in ended
    ]
    bound = (
        SiteIdentity.select(SiteIdentity.hardware_id)
        .where((SiteIdentity.site == site.id) & (SiteIdentity.state == "bound"))
        .scalar()
    )
    found.append(
        JournalEpoch(
            epoch=site.epoch,
            current=True,
            hostname=site.hostname,
            hardware_id=bound,
            started_at=ms_to_iso(site.enrolled_at),
            ended_at=None,
            acked_seq=site.acked_seq,
            compacted_through=site.compacted_through,
            entries=JournalRow.select().where(JournalRow.site == site.id).count(),
        )
    )
    return found
