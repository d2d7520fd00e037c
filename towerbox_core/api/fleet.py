"""The fleet registry API's request and response shapes.

The registry's routes take and answer these structs, so its OpenAPI document
describes every answer, and a client decodes the very struct the server encoded.
The agent's own protocol (journal batches, heartbeats, desired documents) lives in
``towerbox_core.wire``; the sync answers here wrap those structs.

Times the registry records are ISO 8601 text in UTC; times a node reported
(``created_at`` of an entry, an object's ``as_of``) are the text the node sent.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

import msgspec

from towerbox_core.api.provisioning import JournalEpoch
from towerbox_core.api.sync import JournalSummary
from towerbox_core.api.versions import SiteVersions
from towerbox_core.wire import DesiredIndexItem, WireEntry

SiteStatusName = Literal["pending", "online", "stale", "offline"]


class OperatorRole(enum.StrEnum):
    ADMIN = "admin"  # everything
    VIEWER = "viewer"  # reads only


class Health(msgspec.Struct, frozen=True):
    """GET /healthz."""

    status: str
    database: str  # "sqlite" or "postgresql"
    schema_version: int


# -- operators and their tokens -------------------------------------------------------


class LoginReply(msgspec.Struct, frozen=True):
    token: str
    expires_at: str


class OperatorIdentity(msgspec.Struct, frozen=True):
    """Who an operator is: GET /auth/me, and the answer to POST /operators."""

    username: str
    role: OperatorRole


class OperatorInfo(OperatorIdentity, frozen=True):
    disabled: bool


class OperatorCreate(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str
    role: OperatorRole = OperatorRole.VIEWER


class ApiTokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class ApiTokenCreated(msgspec.Struct, frozen=True):
    token: str  # shown once; the registry keeps only its hash
    name: str


class ApiTokenInfo(msgspec.Struct, frozen=True):
    id: int
    name: str
    kind: str  # "login", "api" or "cli"
    operator: str
    created_at: str
    expires_at: str | None


# -- sites ------------------------------------------------------------------------------


class SiteCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    region: str = ""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    token_ttl_s: int | None = None


class SiteUpdate(msgspec.Struct, forbid_unknown_fields=True):
    region: str | None = None
    labels: dict[str, str] | None = None


class SiteInfo(msgspec.Struct, frozen=True):
    name: str
    region: str
    labels: dict[str, str]
    status: SiteStatusName
    last_contact: str | None
    enrolled: bool
    acked_seq: int


class SiteDetail(SiteInfo, frozen=True):
    hostname: str
    created_at: str
    enrolled_at: str | None
    compacted_through: int
    heartbeat: dict[str, Any] | None  # the last heartbeat, with the last host facts sent
    # The journal epoch the site's node writes, and every epoch the site had: a site
    # re-bound to a new node starts a new one (docs/enrollment.md).
    epoch: int = 1
    epochs: list[JournalEpoch] = msgspec.field(default_factory=list)
    versions: SiteVersions | None = None  # None before the site's first heartbeat


class SiteCreated(SiteInfo, frozen=True):
    enrollment_token: str
    enrollment_expires_at: str


class SiteList(msgspec.Struct, frozen=True):
    total: int
    sites: list[SiteInfo]


class EnrollmentTokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    ttl_s: int | None = None


class EnrollmentTokenIssued(msgspec.Struct, frozen=True):
    site: str
    token: str
    expires_at: str


# -- what sites reported ------------------------------------------------------------------


class SiteJournal(msgspec.Struct, frozen=True):
    site: str
    acked_seq: int
    compacted_through: int
    entries: list[WireEntry]


class SiteJournalSummary(JournalSummary, frozen=True):
    """A site's journal as the registry holds it, computed as the node computes its own:
    equal summaries prove the registry holds exactly the node's journal."""

    site: str


class SiteObject(msgspec.Struct, frozen=True):
    object_type: str
    object_id: str
    state: Any  # the object's last reported state, as the node shaped it
    seq: int
    as_of: str | None


class SiteObjects(msgspec.Struct, frozen=True):
    site: str
    status: SiteStatusName
    last_contact: str | None
    total: int
    objects: list[SiteObject]


class FleetVm(msgspec.Struct, frozen=True):
    site: str
    site_status: SiteStatusName
    id: str
    name: str | None
    state: str | None
    tenant: str | None
    role: str | None
    seq: int
    as_of: str | None


class FleetVms(msgspec.Struct, frozen=True):
    total: int
    limit: int
    offset: int
    vms: list[FleetVm]


class DesiredConflict(msgspec.Struct, frozen=True):
    """A desired-state document a node rejected or found in conflict."""

    site: str
    seq: int
    kind: str
    result: str  # "rejected" or "conflict"
    version: int | None
    etag: str | None
    reason: str
    detail: Any  # the node's whole journal entry state
    created_at: str | None


class DesiredConflicts(msgspec.Struct, frozen=True):
    total: int
    conflicts: list[DesiredConflict]


# -- desired state ---------------------------------------------------------------------


class DesiredWritten(msgspec.Struct, frozen=True):
    scope: str  # "site:<name>" or "group:<label>=<value>"
    kind: str
    version: int
    etag: str


class DesiredRecord(msgspec.Struct, frozen=True):
    scope: str
    kind: str
    version: int
    etag: str
    document: dict[str, Any]
    created_at: str
    created_by: str


class SiteDesired(msgspec.Struct, frozen=True):
    site: str
    own: list[DesiredRecord]  # the site's own documents
    effective: list[DesiredIndexItem]  # what the site gets, its own or its groups'


# -- sync: what agents call ---------------------------------------------------------


class EnrollRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: str
    hostname: str = ""


class EnrollReply(msgspec.Struct, frozen=True):
    site: str
    secret: str  # the site's bearer secret on /api/v1/sync/*


class JournalHead(msgspec.Struct, frozen=True):
    acked_seq: int
    compacted_through: int


class HeartbeatReply(msgspec.Struct, frozen=True, omit_defaults=True):
    desired: list[DesiredIndexItem]
    # The heartbeat carried only a facts hash the registry does not hold (a restored
    # or new registry): send the host facts and versions again, now.
    facts_wanted: bool = False
