"""Staged rollouts: a group's desired document published in waves (docs/rollouts.md).

Creating one writes the group's new version and the rollout, its waves and its sites
in one transaction: until a site is released it keeps being served what it had
(registry.store.sql.DESIRED_FOR_SITE). ``registry.services.rollout_step`` moves it
on; the operator's actions here take the same row lock.
"""

from __future__ import annotations

import logging

import msgspec

from registry.config import RolloutsConfig
from registry.services import rollout_plan
from registry.services.desired import (
    ACTIVE_STATES,
    DesiredService,
    current_doc,
    group_scope,
    refuse_during_rollout,
)
from registry.services.sites import SiteService
from registry.store import sql
from registry.store.models import DesiredDoc, Site, SiteLabel, ms_to_iso, now_ms, tuples
from registry.store.rollout_models import RolloutRow, RolloutSiteRow, RolloutWaveRow
from registry.store.rollout_store import (
    HELD_BY_EARLIER,
    RESUME_FAILED,
    rollout_lock,
    wave_counts,
    write_transaction,
)
from towerbox_core.api.rollouts import (
    ROLLOUT_STATES,
    SITE_STATUSES,
    Rollout,
    RolloutCreate,
    RolloutList,
    RolloutSite,
    RolloutSites,
    RolloutWave,
)
from towerbox_core.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)


class RolloutService:
    def __init__(self, defaults: RolloutsConfig, sites: SiteService, desired: DesiredService):
        self.defaults = defaults
        self._sites = sites
        self._desired = desired

    def create(self, body: RolloutCreate, author: str) -> Rollout:
        scope = group_scope(body.group)
        opts = rollout_plan.options(body, self.defaults)
        key, value = scope.removeprefix("group:").split("=", 1)
        with write_transaction():
            refuse_during_rollout(scope, body.kind)
            online_since = self._sites.status.since(now_ms())[0]
            members = [
                (site_id, name, last is not None and last >= online_since)
                for site_id, name, last in tuples(
                    Site.select(Site.id, Site.name, Site.last_contact)
                    .join(SiteLabel, on=SiteLabel.site == Site.id)
                    .where(SiteLabel.key == key, SiteLabel.value == value)
                )
            ]
            if not members:
                raise InvalidInput(
                    f"no site has the label {key}={value}; label sites before rolling out to them",
                    code="empty_group",
                    field="group",
                )
            previous = current_doc(scope, body.kind)
            written = self._desired.put(
                scope, body.kind, body.document, body.if_match, author, rollout=True
            )
            doc = DesiredDoc.get(
                DesiredDoc.scope == scope,
                DesiredDoc.kind == body.kind,
                DesiredDoc.version == written.version,
            )
            held: dict[int, int | None] = {}
            if previous is not None:
                held = dict(sql.fetchall(HELD_BY_EARLIER, (previous.id,)))
            row = RolloutRow.create(
                scope=scope,
                kind=body.kind,
                doc_id=doc.id,
                version=written.version,
                etag=written.etag,
                previous_doc_id=previous.id if previous else None,
                previous_version=previous.version if previous else None,
                state="running",
                canary=opts.canary,
                soak_s=opts.soak_s,
                canary_failure_pct=opts.canary_failure_pct,
                failure_pct=opts.failure_pct,
                offline_wait_s=opts.offline_wait_s,
                created_by=author,
            )
            waves = rollout_plan.plan(members, opts)
            for number, wave in enumerate(waves):
                RolloutWaveRow.create(
                    rollout=row.id, wave=number, percent=wave.percent, size=len(wave.sites)
                )
                RolloutSiteRow.insert_many(
                    [
                        {
                            "rollout": row.id,
                            "site": site_id,
                            "wave": number,
                            "doc_id": doc.id,
                            "hold_doc_id": held.get(site_id, previous.id if previous else None),
                        }
                        for site_id in wave.sites
                    ]
                ).execute()
        log.info(
            "rollout %d of %s v%d to %s: %d sites in %d waves",
            row.id, body.kind, written.version, scope, len(members), len(waves),
        )  # fmt: skip
        return self.get(row.id)

    def get(self, rollout_id: int) -> Rollout:
        row = RolloutRow.get_or_none(RolloutRow.id == rollout_id)
        if row is None:
            raise NotFound(f"no rollout {rollout_id}", code="rollout_not_found")
        return _describe(row)

    def list(
        self, state: str | None, group: str | None, kind: str | None, limit: int, offset: int
    ) -> RolloutList:
        query = RolloutRow.select()
        if state is not None:
            query = query.where(RolloutRow.state == _one_of(state, ROLLOUT_STATES, "state"))
        if group is not None:
            query = query.where(RolloutRow.scope == group_scope(group))
        if kind is not None:
            query = query.where(RolloutRow.kind == kind)
        total = query.count()
        page = query.order_by(RolloutRow.id.desc()).limit(limit).offset(offset)
        return RolloutList(rollouts=[_describe(r) for r in page], total=total)

    def sites(
        self, rollout_id: int, wave: int | None, status: str | None, limit: int, offset: int
    ) -> RolloutSites:
        self.get(rollout_id)
        query = (
            RolloutSiteRow.select(RolloutSiteRow, Site.name)
            .join(Site, on=Site.id == RolloutSiteRow.site)
            .where(RolloutSiteRow.rollout == rollout_id)
        )
        if wave is not None:
            query = query.where(RolloutSiteRow.wave == wave)
        if status is not None:
            query = query.where(RolloutSiteRow.status == _one_of(status, SITE_STATUSES, "status"))
        total = query.count()
        page = query.order_by(RolloutSiteRow.wave, Site.name).limit(limit).offset(offset)
        return RolloutSites(
            rollout=rollout_id,
            sites=[
                RolloutSite(
                    site=r.site.name,
                    wave=r.wave,
                    status=r.status,
                    reason=r.reason,
                    released_at=ms_to_iso(r.released_at),
                    applied_at=ms_to_iso(r.applied_at),
                    finished_at=ms_to_iso(r.finished_at),
                )
                for r in page
            ],
            total=total,
        )

    # -- operator actions ------------------------------------------------------------

    def pause(self, rollout_id: int, author: str) -> Rollout:
        return self._move(rollout_id, ("running",), "paused", f"paused by {author}")

    def resume(self, rollout_id: int, author: str) -> Rollout:
        """A halted wave is judged again: its failed sites that now applied the
        version and stay healthy count as good."""
        with rollout_lock(rollout_id) as found:
            row = _checked(found, rollout_id, ("paused", "halted"), "resume")
            if row.state == "halted":
                sql.execute(RESUME_FAILED, (row.id, row.current_wave))
                RolloutWaveRow.update(state="running", finished_at=None).where(
                    RolloutWaveRow.rollout == row.id, RolloutWaveRow.wave == row.current_wave
                ).execute()
            _set_state(row, "running", f"resumed by {author}")
        return self.get(rollout_id)

    def abort(self, rollout_id: int, author: str) -> Rollout:
        """Stop releasing: released sites keep the new version, the rest the old."""
        return self._move(rollout_id, ACTIVE_STATES, "aborted", f"aborted by {author}")

    def rollback(self, rollout_id: int, author: str) -> Rollout:
        """Publish the previous version's document again as the group's next version,
        to every site of the group at once: they all end where they were before."""
        with rollout_lock(rollout_id) as found:
            allowed = (*ACTIVE_STATES, "aborted", "completed")
            row = _checked(found, rollout_id, allowed, "roll back")
            if row.previous_doc_id is None:
                raise Conflict(
                    f"rollout {row.id} published the first {row.kind} document of "
                    f"{row.scope}; there is no previous version to go back to",
                    code="no_previous_version",
                )
            current = current_doc(row.scope, row.kind)
            if current is None or current.id != row.doc_id:
                raise Conflict(
                    f"a newer {row.kind} document for {row.scope} replaced this rollout's; "
                    "roll back the newer one",
                    code="rollout_superseded",
                )
            previous = DesiredDoc.get_by_id(row.previous_doc_id)
            written = self._desired.put(
                row.scope,
                row.kind,
                msgspec.json.decode(previous.document),
                None,
                author,
                rollout=True,
            )
            row.rollback_version = written.version
            _set_state(
                row,
                "rolled_back",
                f"rolled back by {author}: version {written.version} carries version "
                f"{row.previous_version}'s document",
            )
        return self.get(rollout_id)

    def _move(self, rollout_id: int, allowed: tuple[str, ...], state: str, reason: str) -> Rollout:
        with rollout_lock(rollout_id) as found:
            row = _checked(found, rollout_id, allowed, state.removesuffix("ed"))
            _set_state(row, state, reason)
        return self.get(rollout_id)


def _one_of(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise InvalidInput(
            f"unknown {name} {value!r}; use one of {', '.join(allowed)}",
            code=f"invalid_{name}",
            field=name,
        )
    return value


def _checked(
    row: RolloutRow | None, rollout_id: int, allowed: tuple[str, ...], action: str
) -> RolloutRow:
    if row is None:
        raise NotFound(f"no rollout {rollout_id}", code="rollout_not_found")
    if row.state not in allowed:
        raise Conflict(
            f"rollout {row.id} is {row.state}; only a {' or '.join(allowed)} rollout can {action}",
            code="invalid_rollout_state",
            state=row.state,
        )
    return row


def _set_state(row: RolloutRow, state: str, reason: str) -> None:
    now = now_ms()
    row.state = state
    row.reason = reason
    row.updated_at = now
    if state in ("aborted", "rolled_back", "completed"):
        row.finished_at = now
    row.save()
    log.info("rollout %d %s: %s", row.id, state, reason)


def _describe(row: RolloutRow) -> Rollout:
    counts = wave_counts(row.id)
    waves = []
    for w in (
        RolloutWaveRow.select()
        .where(RolloutWaveRow.rollout == row.id)
        .order_by(RolloutWaveRow.wave)
    ):
        c = counts.get(w.wave, {})
        healthy = c.get("healthy", 0)
        waves.append(
            RolloutWave(
                wave=w.wave,
                percent=w.percent,
                state=w.state,
                sites=w.size,
                released=w.size - c.get("pending", 0),
                applied=c.get("applied", 0) + healthy,
                healthy=healthy,
                failed=c.get("failed", 0),
                deferred=c.get("deferred", 0),
                started_at=ms_to_iso(w.started_at),
                finished_at=ms_to_iso(w.finished_at),
            )
        )
    return Rollout(
        id=row.id,
        group=row.scope.removeprefix("group:"),
        kind=row.kind,
        state=row.state,
        reason=row.reason,
        version=row.version,
        etag=row.etag,
        previous_version=row.previous_version,
        rollback_version=row.rollback_version,
        current_wave=row.current_wave,
        waves=waves,
        canary=row.canary,
        soak_s=row.soak_s,
        canary_failure_pct=row.canary_failure_pct,
        failure_pct=row.failure_pct,
        offline_wait_s=row.offline_wait_s,
        created_by=row.created_by,
        created_at=ms_to_iso(row.created_at),
        updated_at=ms_to_iso(row.updated_at),
        finished_at=ms_to_iso(row.finished_at),
    )
