"""Sites: creation, one-time enrollment tokens, enrollment, status from last contact.

A site authenticates with a secret (``tbs_...``) it received once at enrollment; the
registry keeps only its SHA-256, as it does for enrollment tokens (``tbe_...``).
Status is derived when asked, from the last contact and the heartbeat interval:
nothing is ever written to mark a site (or its VMs) as failed.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import peewee

from registry.config import SitesConfig
from registry.services.site_search import name_or_hostname_contains, sort_order
from registry.services.versions import site_heartbeat, site_versions
from registry.store import heartbeats, sql
from registry.store.epochs import epochs
from registry.store.models import (
    ConflictRow,
    EnrollmentToken,
    JournalArchiveRow,
    JournalRow,
    ObjectRow,
    Site,
    SiteEpoch,
    SiteIdentity,
    SiteLabel,
    db_proxy,
    ms_to_iso,
    now_ms,
    tuples,
)
from towerbox_core.api.fleet import (
    EnrollmentTokenIssued,
    EnrollReply,
    SiteCreated,
    SiteDetail,
    SiteInfo,
    SiteList,
    SiteStatusName,
)
from towerbox_core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from towerbox_core.names import check_labels, check_name, parse_label
from towerbox_core.secret_files import hash_token
from towerbox_core.wire import Heartbeat

log = logging.getLogger(__name__)

SECRET_PREFIX = "tbs_"  # noqa: S105 - a prefix, not a secret
ENROLLMENT_PREFIX = "tbe_"
STATUSES = ("pending", "online", "stale", "offline")


@dataclass(frozen=True)
class SitePrincipal:
    site_id: int
    name: str


class SiteStatus:
    """online / stale / offline from missed heartbeat intervals; pending before any contact."""

    def __init__(self, cfg: SitesConfig) -> None:
        self._online_ms = int(cfg.heartbeat_s * cfg.online_intervals * 1000)
        self._stale_ms = int(cfg.heartbeat_s * cfg.stale_intervals * 1000)

    def of(self, last_contact: int | None, now: int) -> SiteStatusName:
        if last_contact is None:
            return "pending"
        age = now - last_contact
        if age <= self._online_ms:
            return "online"
        return "stale" if age <= self._stale_ms else "offline"

    def since(self, now: int) -> tuple[int, int]:
        """The last contacts from which a site is online, and stale (ms since epoch)."""
        return now - self._online_ms, now - self._stale_ms

    def where(self, status: str, now: int) -> peewee.Expression:
        if status == "pending":
            return Site.last_contact.is_null()
        if status == "online":
            return Site.last_contact >= now - self._online_ms
        if status == "stale":
            return (Site.last_contact < now - self._online_ms) & (
                Site.last_contact >= now - self._stale_ms
            )
        if status == "offline":
            return Site.last_contact < now - self._stale_ms
        raise InvalidInput(
            f"unknown status {status!r}; use one of {', '.join(STATUSES)}",
            code="invalid_status",
            field="status",
        )


class SiteService:
    def __init__(self, cfg: SitesConfig) -> None:
        self.cfg = cfg
        self.status = SiteStatus(cfg)

    # -- operator side -------------------------------------------------------------

    def create(
        self, name: str, region: str, labels: dict[str, str], ttl_s: int | None
    ) -> SiteCreated:
        with db_proxy.obj.atomic():
            site = self.add(name, region, labels)
            token, expires = self._new_token(site.id, ttl_s)
        log.info("site %s created (region %s)", name, region or "-")
        return SiteCreated(
            **msgspec.structs.asdict(self.describe(site)),
            enrollment_token=token,
            enrollment_expires_at=ms_to_iso(expires),
        )

    @staticmethod
    def add(name: str, region: str, labels: dict[str, str]) -> Site:
        """A new site with its labels, in the caller's transaction (no token)."""
        check_name("site", name)
        if region:
            check_name("region", region, field="region")
        check_labels(labels)
        # The insert comes first: on SQLite a transaction that reads before it writes
        # cannot wait for the write lock, and concurrent creations would fail busy.
        try:
            with db_proxy.obj.atomic():
                site = Site.create(name=name, region=region, labels=_json(labels))
                _write_labels(site.id, labels)
        except peewee.IntegrityError as err:
            raise Conflict(f"site {name!r} exists", code="site_exists", field="name") from err
        return site

    def new_enrollment_token(self, name: str, ttl_s: int | None) -> EnrollmentTokenIssued:
        site = self.get(name)
        with db_proxy.obj.atomic():
            token, expires = self._new_token(site.id, ttl_s)
        return EnrollmentTokenIssued(site=name, token=token, expires_at=ms_to_iso(expires))

    def _new_token(self, site_id: int, ttl_s: int | None) -> tuple[str, int]:
        ttl = self.cfg.enrollment_ttl_s if ttl_s is None else ttl_s
        if not 0 < ttl <= 30 * 86400:
            raise InvalidInput(
                "ttl_s must be between 1 s and 30 days", code="invalid_ttl", field="ttl_s"
            )
        token = ENROLLMENT_PREFIX + secrets.token_urlsafe(32)
        expires = now_ms() + ttl * 1000
        EnrollmentToken.create(site=site_id, token_hash=hash_token(token), expires_at=expires)
        return token, expires

    def get(self, name: str) -> Site:
        site = Site.get_or_none(Site.name == name)
        if site is None:
            raise NotFound(f"no site {name!r}", code="site_not_found")
        return site

    def update(self, name: str, region: str | None, labels: dict[str, str] | None) -> SiteInfo:
        site = self.get(name)
        if region:
            check_name("region", region, field="region")
        if labels is not None:
            check_labels(labels)
        with db_proxy.obj.atomic():
            if region is not None:
                site.region = region
            if labels is not None:
                site.labels = _json(labels)
                SiteLabel.delete().where(SiteLabel.site == site.id).execute()
                _write_labels(site.id, labels)
            site.save()
        return self.describe(site)

    def delete(self, name: str) -> None:
        site = self.get(name)
        with db_proxy.obj.atomic():
            for model in (
                ConflictRow,
                ObjectRow,
                JournalRow,
                EnrollmentToken,
                SiteLabel,
                SiteIdentity,
                SiteEpoch,
                JournalArchiveRow,
            ):
                model.delete().where(model.site == site.id).execute()
            site.delete_instance()
        log.info("site %s deleted with its journal and objects", name)

    def search(
        self,
        status: str | None,
        labels: Iterable[str],
        region: str | None,
        limit: int,
        offset: int,
        q: str | None = None,
        sort: str | None = None,
        version: peewee.Expression | None = None,  # services.versions.version_filter
    ) -> SiteList:
        now = now_ms()
        query = Site.select()
        if q:
            query = query.where(name_or_hostname_contains(q))
        if version is not None:
            query = query.where(version)
        if status:
            query = query.where(self.status.where(status, now))
        if region:
            query = query.where(Site.region == region)
        for text in labels:
            key, value = parse_label(text)
            matching = SiteLabel.select(SiteLabel.site).where(
                SiteLabel.key == key, SiteLabel.value == value
            )
            query = query.where(Site.id.in_(matching))
        total = query.count()
        sites = query.order_by(*sort_order(sort)).limit(limit).offset(offset)
        return SiteList(total=total, sites=[self.describe(s, now) for s in sites])

    def describe(self, site: Site, now: int | None = None) -> SiteInfo:
        now = now_ms() if now is None else now
        return SiteInfo(
            name=site.name,
            region=site.region,
            labels=msgspec.json.decode(site.labels),
            status=self.status.of(site.last_contact, now),
            last_contact=ms_to_iso(site.last_contact),
            enrolled=site.secret_hash is not None,
            acked_seq=site.acked_seq,
        )

    def detail(self, site: Site) -> SiteDetail:
        return SiteDetail(
            **msgspec.structs.asdict(self.describe(site)),
            hostname=site.hostname,
            created_at=ms_to_iso(site.created_at),
            enrolled_at=ms_to_iso(site.enrolled_at),
            compacted_through=site.compacted_through,
            heartbeat=site_heartbeat(site),
            epoch=site.epoch,
            epochs=epochs(site),
            versions=site_versions(site),
        )

    # -- site side ----------------------------------------------------------------

    def enroll(self, token: str, hostname: str) -> EnrollReply:
        if len(hostname) > 253:
            raise InvalidInput("hostname is too long", code="invalid_hostname", field="hostname")
        token_hash = hash_token(token)
        now = now_ms()
        with db_proxy.obj.atomic():
            # The conditional UPDATE is the claim: of two concurrent enrollments with
            # the same token, exactly one changes the row.
            claimed = (
                EnrollmentToken.update(used_at=now)
                .where(
                    EnrollmentToken.token_hash == token_hash,
                    EnrollmentToken.used_at.is_null(),
                    EnrollmentToken.expires_at > now,
                )
                .execute()
            )
            row = EnrollmentToken.get_or_none(EnrollmentToken.token_hash == token_hash)
            if row is None:
                raise Unauthorized("unknown enrollment token", code="enrollment_token_invalid")
            if not claimed:
                if row.used_at is not None:
                    raise Unauthorized(
                        "this enrollment token was used already; ask for a new one "
                        "(POST /api/v1/sites/{name}/enrollment-tokens)",
                        code="enrollment_token_used",
                    )
                raise Unauthorized(
                    "this enrollment token has expired; ask for a new one",
                    code="enrollment_token_expired",
                )
            secret = self.issue_secret(row.site_id, hostname, now)
            name = Site.select(Site.name).where(Site.id == row.site_id).scalar()
        log.info("site %s enrolled from host %r", name, hostname)
        return EnrollReply(site=name, secret=secret)

    @staticmethod
    def issue_secret(site_id: int, hostname: str, now: int) -> str:
        """A new site secret, in the caller's transaction.

        A new enrollment replaces the secret: a reinstalled node takes over and the old
        secret stops working.
        """
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        Site.update(secret_hash=hash_token(secret), enrolled_at=now, hostname=hostname).where(
            Site.id == site_id
        ).execute()
        return secret

    @staticmethod
    def authenticate(secret: str) -> SitePrincipal:
        if not secret.startswith(SECRET_PREFIX):
            raise Unauthorized(
                "send the site secret from enrollment: 'Authorization: Bearer tbs_...'",
                code="invalid_site_secret",
            )
        row = sql.fetchone(sql.SITE_BY_SECRET, (hash_token(secret),))
        if row is None:
            raise Unauthorized("unknown site secret; enroll again", code="invalid_site_secret")
        return SitePrincipal(row[0], row[1])

    @staticmethod
    def record_heartbeat(site_id: int, beat: Heartbeat) -> bool:
        """Store it; True when the registry lacks the host facts the beat only hashed."""
        return heartbeats.record(site_id, beat)

    @staticmethod
    def labels_of(site_id: int) -> list[tuple[str, str]]:
        query = SiteLabel.select(SiteLabel.key, SiteLabel.value).where(SiteLabel.site == site_id)
        return [(key, value) for key, value in tuples(query)]


def _write_labels(site_id: int, labels: dict[str, str]) -> None:
    if labels:
        SiteLabel.insert_many(
            [{"site": site_id, "key": k, "value": v} for k, v in labels.items()]
        ).execute()


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()
