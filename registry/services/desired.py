"""Desired-state documents: versioned per site and per label group, fetched by ETag.

A site's effective document of a kind is its own, else the one of the first matching
group in ``label=value`` sort order (documented in docs/sync-protocol.md). The ETag
covers the scope as well as the version, so a site that switches from one group's
document to another's always sees a new ETag.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import msgspec
import peewee

from registry.errors import PreconditionFailed
from registry.services.sites import SiteService
from registry.store import sql
from registry.store.models import DesiredDoc, db_proxy, ms_to_iso
from registry.store.rollout_models import RolloutRow
from towerbox_core.api.fleet import DesiredRecord, DesiredWritten
from towerbox_core.errors import Conflict, InvalidInput, NotFound
from towerbox_core.names import parse_label
from towerbox_core.service_rules import parse_services_document
from towerbox_core.tenant_rules import parse_tenants_document
from towerbox_core.wire import DESIRED_KINDS, DesiredDocument, DesiredIndexItem

# A rollout in one of these states still decides what the group's sites receive.
ACTIVE_STATES = ("running", "paused", "halted")


def site_scope(name: str) -> str:
    return f"site:{name}"


def group_scope(group: str) -> str:
    key, value = parse_label(group, "group")
    return f"group:{key}={value}"


def _source(scope: str) -> str:
    return "site" if scope.startswith("site:") else scope


def _check_kind(kind: str) -> None:
    if kind not in DESIRED_KINDS:
        raise NotFound(
            f"no desired-state kind {kind!r}; kinds are {', '.join(DESIRED_KINDS)}",
            code="unknown_desired_kind",
        )


# Kinds checked here with the shared structs and rules before they are published; the
# node checks every kind again (what only it can know: devices, profiles, templates).
_CHECKS: dict[str, Callable[[dict[str, Any]], object]] = {
    "tenants": parse_tenants_document,
    "services": parse_services_document,
}


def _etag_matches(header: str, doc: DesiredDoc) -> bool:
    """If-Match / If-None-Match: '*', a quoted or bare ETag, or the version number."""
    for part in header.split(","):
        tag = part.strip().removeprefix("W/").strip('"')
        if tag in ("*", doc.etag, str(doc.version)):
            return True
    return False


class DesiredService:
    def __init__(self, sites: SiteService) -> None:
        self._sites = sites

    def put(
        self,
        scope: str,
        kind: str,
        document: Any,
        if_match: str | None,
        author: str,
        rollout: bool = False,
    ) -> DesiredWritten:
        """A new current version. ``rollout``: the caller (RolloutService) publishes it
        in waves and has checked no other rollout of the scope and kind is active."""
        _check_kind(kind)
        if not isinstance(document, dict):
            raise InvalidInput("a desired-state document is a JSON object", code="invalid_document")
        check = _CHECKS.get(kind)
        if check is not None:
            check(document)
        text = msgspec.json.encode(document).decode()
        try:
            with db_proxy.obj.atomic():
                if scope.startswith("group:") and not rollout:
                    refuse_during_rollout(scope, kind)
                current = current_doc(scope, kind)
                if if_match is not None and (
                    current is None or not _etag_matches(if_match, current)
                ):
                    raise PreconditionFailed(
                        f"If-Match {if_match} is not the current version of {kind} for "
                        f"{scope}; fetch it again and reapply your change",
                        code="version_mismatch",
                        current_version=current.version if current else 0,
                        current_etag=current.etag if current else None,
                    )
                version = current.version + 1 if current else 1
                etag = hashlib.sha256(f"{scope}\n{kind}\n{version}\n{text}".encode()).hexdigest()
                if current is not None:
                    DesiredDoc.update(current=False).where(DesiredDoc.id == current.id).execute()
                DesiredDoc.create(
                    scope=scope,
                    kind=kind,
                    version=version,
                    document=text,
                    etag=etag[:32],
                    created_by=author,
                )
        except peewee.IntegrityError as err:
            # Two writers made the same version at once: the unique key kept one.
            raise Conflict(
                f"{kind} for {scope} changed concurrently; retry", code="concurrent_update"
            ) from err
        return DesiredWritten(scope=scope, kind=kind, version=version, etag=etag[:32])

    def get(self, scope: str, kind: str) -> DesiredRecord:
        _check_kind(kind)
        doc = current_doc(scope, kind)
        if doc is None:
            raise NotFound(f"no {kind} document for {scope}", code="desired_not_found")
        return _describe(doc)

    def list_scope(self, scope: str) -> list[DesiredRecord]:
        query = DesiredDoc.select().where(DesiredDoc.scope == scope, DesiredDoc.current == True)  # noqa: E712
        return [_describe(d) for d in query.order_by(DesiredDoc.kind)]

    def index(self, site_id: int, site_name: str) -> list[DesiredIndexItem]:
        """What a heartbeat answers: one plain query, as it runs for every heartbeat."""
        own = site_scope(site_name)
        rows = sql.fetchall(sql.DESIRED_FOR_SITE, (site_id, own, site_id))
        return [
            DesiredIndexItem(kind=kind, etag=etag, version=version, source=_source(scope))
            for scope, kind, version, etag in _best(rows, own)
        ]

    def effective(self, site_id: int, site_name: str, kind: str) -> DesiredDocument:
        """The document the index names for this kind (a rollout may still hold the
        site on the group's previous version)."""
        _check_kind(kind)
        own = site_scope(site_name)
        rows = sql.fetchall(sql.DOCUMENT_FOR_SITE, (site_id, own, site_id, kind))
        best = _best(rows, own)
        if not best:
            raise NotFound(
                f"no {kind} document for this site or its groups", code="desired_not_found"
            )
        scope, kind, version, etag, text = best[0]
        return DesiredDocument(
            kind=kind,
            etag=etag,
            version=version,
            source=_source(scope),
            document=msgspec.json.decode(text),
        )


def _best(rows: list[tuple[Any, ...]], own: str) -> list[tuple[Any, ...]]:
    """Per kind, the row of the preferred scope; rows are (scope, kind, ...)."""
    best: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        held = best.get(row[1])
        if held is None or _preferred(row[0], held[0], own):
            best[row[1]] = row
    return [best[k] for k in sorted(best)]


def _preferred(scope: str, held: str, own: str) -> bool:
    """The site's own document wins; among groups the lowest label=value does."""
    return held != own and (scope == own or scope < held)


def refuse_during_rollout(scope: str, kind: str) -> None:
    active = (
        RolloutRow.select(RolloutRow.id)
        .where(
            RolloutRow.scope == scope,
            RolloutRow.kind == kind,
            RolloutRow.state.in_(ACTIVE_STATES),
        )
        .first()
    )
    if active is not None:
        raise Conflict(
            f"rollout {active.id} of {kind} for {scope} is still active; abort or finish it first",
            code="rollout_active",
            rollout=active.id,
        )


def current_doc(scope: str, kind: str) -> DesiredDoc | None:
    result: DesiredDoc | None = DesiredDoc.get_or_none(
        DesiredDoc.scope == scope,
        DesiredDoc.kind == kind,
        DesiredDoc.current == True,  # noqa: E712
    )
    return result


def _describe(doc: DesiredDoc) -> DesiredRecord:
    return DesiredRecord(
        scope=doc.scope,
        kind=doc.kind,
        version=doc.version,
        etag=doc.etag,
        document=msgspec.json.decode(doc.document),
        created_at=ms_to_iso(doc.created_at),
        created_by=doc.created_by,
    )
