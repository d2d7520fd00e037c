"""Zero-touch enrollment: hardware identities, provisioning, re-binding.

A provisioning credential (registry.services.credentials) is the only thing a freshly
installed node carries. With it the node proves a
hardware identity: one the operator listed for a site (``PUT /sites/{name}/identity``)
binds that site; one on the credential's allow-list makes the registry create the
site with the credential's labels. An identity belongs to one site and is bound to one
node: a second claim is refused, never a silent takeover. A site re-bound to a new
node (an operator action, or a listed replacement proving its identity) starts a new
journal epoch (registry.store.epochs).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import peewee

from registry.services.credentials import CredentialService, allowed, check_hardware_id
from registry.services.fleet import FleetService, wire_entries
from registry.services.sites import SiteService
from registry.store.epochs import (
    EpochStarted,
    lock_site,
    start_new_epoch,
    write_transaction,
)
from registry.store.models import (
    JournalArchiveRow,
    ProvisioningCredential,
    Site,
    SiteEpoch,
    SiteIdentity,
    ms_to_iso,
    now_ms,
)
from towerbox_core.api.fleet import SiteJournal
from towerbox_core.api.provisioning import (
    ProvisionReply,
    RebindReply,
    SiteIdentityInfo,
)
from towerbox_core.api_params import SQL_INT_MAX
from towerbox_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from towerbox_core.names import NAME_MAX
from towerbox_core.rate_limit import TokenBuckets

log = logging.getLogger(__name__)

_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@contextmanager
def _claiming(hardware_id: str | None) -> Iterator[None]:
    """A write transaction that claims ``hardware_id``. Two claims at once on
    PostgreSQL: the second fails on the identity's key and is answered as claimed,
    with nothing changed."""
    try:
        with write_transaction():
            yield
    except peewee.IntegrityError as err:
        raise Conflict(
            f"hardware id {hardware_id!r} was claimed at the same moment; look at "
            "GET /api/v1/sites/{name}/identity",
            code="identity_claimed",
            field="hardware_id",
        ) from err


def site_name_for(hardware_id: str) -> str:
    """The name of a site created for an identity that the allow-list does not name."""
    return ("node-" + _NOT_NAME.sub("-", hardware_id))[:NAME_MAX]


class ProvisioningService:
    def __init__(self, sites: SiteService, fleet: FleetService) -> None:
        self._sites = sites
        self._fleet = fleet
        self.credentials = CredentialService()
        # Attempts per address: a burst of 20, then one every 5 s. A node provisions
        # once; a rack of them behind one address retries with backoff.
        self.attempts = TokenBuckets(rate_per_s=0.2, burst=20)

    # -- identities and re-binding (operators) -------------------------------------

    def set_identity(self, site_name: str, hardware_id: str, replacement: bool) -> SiteIdentityInfo:
        check_hardware_id(hardware_id)
        site = self._sites.get(site_name)
        with _claiming(hardware_id):
            held = SiteIdentity.get_or_none(SiteIdentity.hardware_id == hardware_id)
            if held is not None and (held.site_id != site.id or held.state == "bound"):
                raise _claimed(hardware_id, held)
            has_node = Site.get_by_id(site.id).secret_hash is not None
            if has_node and not replacement:
                raise Conflict(
                    f"site {site_name!r} already has a node; list the identity with "
                    '"replacement": true to replace that node (a new journal epoch), or '
                    f"POST /api/v1/sites/{site_name}/rebind",
                    code="site_bound",
                    field="replacement",
                )
            # One listed identity per site: a new listing replaces the last one.
            SiteIdentity.delete().where(
                (SiteIdentity.site == site.id) & (SiteIdentity.state == "listed")
            ).execute()
            row = SiteIdentity.create(
                hardware_id=hardware_id, site=site.id, state="listed", replacement=replacement
            )
        log.info(
            "identity %s listed for site %s%s",
            hardware_id,
            site_name,
            " as its replacement node" if replacement else "",
        )
        return _identity(site_name, row)

    def identities(self, site_name: str) -> list[SiteIdentityInfo]:
        site = self._sites.get(site_name)
        rows = SiteIdentity.select().where(SiteIdentity.site == site.id)
        return [_identity(site_name, r) for r in rows.order_by(SiteIdentity.created_at)]

    def rebind(self, site_name: str, hardware_id: str | None, ttl_s: int | None) -> RebindReply:
        """Start a new journal epoch for a replacement node: the old node's secret
        stops working, its journal is archived; the new node enrolls with the token
        answered here, or proves ``hardware_id`` with a provisioning credential."""
        if hardware_id is not None:
            check_hardware_id(hardware_id)
        site = self._sites.get(site_name)
        now = now_ms()
        with _claiming(hardware_id):
            if hardware_id is not None:
                held = SiteIdentity.get_or_none(SiteIdentity.hardware_id == hardware_id)
                # This site's own identity may come back: the new epoch releases it.
                if held is not None and held.site_id != site.id:
                    raise _claimed(hardware_id, held)
            started = start_new_epoch(site.id, now)
            if hardware_id is not None:
                SiteIdentity.delete().where(
                    (SiteIdentity.site == site.id) | (SiteIdentity.hardware_id == hardware_id)
                ).execute()
                SiteIdentity.create(hardware_id=hardware_id, site=site.id, state="listed")
            token = self._sites.new_enrollment_token(site_name, ttl_s)
        log.warning(
            "site %s re-bound: epoch %d ended (%d journal entries archived), epoch %d waits for %s",
            site_name,
            started.previous,
            started.archived,
            started.epoch,
            hardware_id or "the node that enrolls with the new token",
        )
        return RebindReply(
            site=site_name,
            epoch=started.epoch,
            previous_epoch=started.previous,
            archived_entries=started.archived,
            hardware_id=hardware_id,
            enrollment_token=token.token,
            enrollment_expires_at=token.expires_at,
        )

    def journal(self, site_name: str, epoch: int, after: int, limit: int) -> SiteJournal:
        """The journal of one epoch of the site: the live one, or an archived one."""
        site = self._sites.get(site_name)
        if epoch == site.epoch:
            return self._fleet.journal(site_name, after, limit)
        ended = None
        if 0 < epoch <= SQL_INT_MAX:  # past the column's range no epoch can match
            ended = SiteEpoch.get_or_none((SiteEpoch.site == site.id) & (SiteEpoch.epoch == epoch))
        if ended is None:
            raise NotFound(
                f"site {site_name!r} has no epoch {epoch}; its current epoch is {site.epoch} "
                f"(GET /api/v1/sites/{site_name}/epochs lists them)",
                code="epoch_not_found",
            )
        a = JournalArchiveRow
        query = (
            a.select(a.seq, a.kind, a.object_type, a.object_id, a.state, a.created_at, a.actor)
            .where(a.site == site.id, a.epoch == epoch, a.seq > after)
            .order_by(a.seq)
            .limit(limit)
        )
        return SiteJournal(
            site=site_name,
            acked_seq=ended.acked_seq,
            compacted_through=ended.compacted_through,
            entries=wire_entries(query),
        )

    # -- the node side ---------------------------------------------------------------

    def provision(self, token: str, hardware_id: str, hostname: str) -> ProvisionReply:
        """Enroll the node that proves ``hardware_id`` with a provisioning credential."""
        if len(hostname) > 253 or "\x00" in hostname:
            raise InvalidInput(
                "hostname must be at most 253 characters without NUL",
                code="invalid_hostname",
                field="hostname",
            )
        now = now_ms()
        credential = self.credentials.authenticate(token, now)
        check_hardware_id(hardware_id)
        with _claiming(hardware_id):
            held = SiteIdentity.get_or_none(SiteIdentity.hardware_id == hardware_id)
            created = False
            started: EpochStarted | None = None
            if held is not None:
                lock_site(held.site_id)
                # Read again under the lock: a node that proved the same identity a
                # moment ago has bound it by now.
                held = SiteIdentity.get_or_none(SiteIdentity.hardware_id == hardware_id)
                if held is None or held.state == "bound":
                    raise _claimed(hardware_id, held)
                site = Site.get_by_id(held.site_id)
                # A site with a node (or its journal) gets a new epoch; one still
                # waiting for its first node (new, or re-bound already) does not.
                if site.secret_hash is not None or site.acked_seq:
                    started = start_new_epoch(site.id, now)
            else:
                entry = allowed(credential, hardware_id)
                if entry is None:
                    raise Forbidden(
                        f"hardware id {hardware_id!r} is neither listed for a site nor on "
                        f"the allow-list of credential {credential.name!r}; an operator "
                        "lists it with PUT /api/v1/sites/{name}/identity",
                        code="identity_not_allowed",
                    )
                site = self._sites.add(
                    entry.site or site_name_for(hardware_id),
                    credential.region,
                    msgspec.json.decode(credential.labels),
                )
                created = True
            SiteIdentity.delete().where(SiteIdentity.hardware_id == hardware_id).execute()
            SiteIdentity.create(hardware_id=hardware_id, site=site.id, state="bound", bound_at=now)
            secret = self._sites.issue_secret(site.id, hostname, now)
            ProvisioningCredential.update(
                last_used_at=now, uses=ProvisioningCredential.uses + 1
            ).where(ProvisioningCredential.id == credential.id).execute()
            epoch = Site.select(Site.epoch).where(Site.id == site.id).scalar()
        log.info(
            "site %s %s by node %s (%r) with credential %s; journal epoch %d",
            site.name,
            "created and enrolled" if created else "enrolled",
            hardware_id,
            hostname,
            credential.name,
            epoch,
        )
        if started is not None:
            log.warning(
                "site %s: replacement node %s took over; epoch %d archived (%d entries)",
                site.name,
                hardware_id,
                started.previous,
                started.archived,
            )
        return ProvisionReply(site=site.name, secret=secret, epoch=epoch, created=created)


def _claimed(hardware_id: str, held: SiteIdentity | None) -> Conflict:
    if held is None:  # released by a re-binding at the same moment
        return Conflict(
            f"hardware id {hardware_id!r} was released while it was being claimed; try again",
            code="identity_claimed",
            field="hardware_id",
        )
    site = Site.select(Site.name).where(Site.id == held.site_id).scalar()
    if held.state == "bound":
        hint = (
            f"it is bound to the node of site {site!r}; to move that site to new hardware "
            f"with the same identity, POST /api/v1/sites/{site}/rebind first"
        )
    else:
        hint = f"it is listed for site {site!r}"
    return Conflict(
        f"hardware id {hardware_id!r} is claimed already: {hint}",
        code="identity_claimed",
        field="hardware_id",
    )


def _identity(site: str, row: SiteIdentity) -> SiteIdentityInfo:
    return SiteIdentityInfo(
        site=site,
        hardware_id=row.hardware_id,
        state=row.state,
        replacement=row.replacement,
        created_at=ms_to_iso(row.created_at),
        bound_at=ms_to_iso(row.bound_at),
    )
