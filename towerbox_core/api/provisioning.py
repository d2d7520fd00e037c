"""Zero-touch enrollment and node replacement: the registry API's shapes.

A provisioning credential (``tbp_...``) lets a freshly installed node enroll itself by
proving a hardware identity (a machine-id or a DMI serial): one the operator listed
for a site, or one on the credential's allow-list, for which the registry creates the
site. A site re-bound to a new node starts a new journal epoch; the old epochs'
journals stay readable. docs/enrollment.md documents every shape here as JSON.
"""

from __future__ import annotations

import msgspec

HARDWARE_ID_MAX = 128
# A machine-id is 32 hex digits, a DMI serial letters, digits and a few separators.
HARDWARE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


class AllowedIdentity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One hardware identity a credential may create a site for; ``site`` names it
    (default: derived from the identity)."""

    hardware_id: str
    site: str | None = None


class ProvisioningCredentialCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    # The labels (the label groups) of the sites the credential creates.
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    region: str = ""
    # Plain hardware ids or {hardware_id, site} entries.
    allow: list[str | AllowedIdentity] = msgspec.field(default_factory=list)
    expires_in_s: int | None = None


class ProvisioningCredentialInfo(msgspec.Struct, frozen=True):
    id: int
    name: str
    labels: dict[str, str]
    region: str
    allow: list[AllowedIdentity]
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    uses: int


class ProvisioningCredentialCreated(ProvisioningCredentialInfo, frozen=True):
    token: str  # shown once; the registry keeps its SHA-256 only


class ProvisioningCredentialList(msgspec.Struct, frozen=True):
    credentials: list[ProvisioningCredentialInfo]


class SiteIdentitySet(msgspec.Struct, forbid_unknown_fields=True):
    hardware_id: str
    # The identity replaces the node the site has now: the node that proves it
    # starts a new journal epoch.
    replacement: bool = False


class SiteIdentityInfo(msgspec.Struct, frozen=True):
    site: str
    hardware_id: str
    state: str  # listed (waiting for a node to prove it) | bound
    replacement: bool
    created_at: str
    bound_at: str | None


class ProvisionRequest(msgspec.Struct, forbid_unknown_fields=True):
    hardware_id: str
    hostname: str = ""


class ProvisionReply(msgspec.Struct, frozen=True):
    site: str
    secret: str  # the site's bearer secret on /api/v1/sync/*, as /enroll answers
    epoch: int
    created: bool  # the registry created the site from the credential's allow-list


class RebindRequest(msgspec.Struct, forbid_unknown_fields=True):
    # The replacement node's identity; without it, the new node enrolls with the token.
    hardware_id: str | None = None
    token_ttl_s: int | None = None


class RebindReply(msgspec.Struct, frozen=True):
    site: str
    epoch: int  # the new epoch
    previous_epoch: int
    archived_entries: int
    hardware_id: str | None
    enrollment_token: str
    enrollment_expires_at: str


class JournalEpoch(msgspec.Struct, frozen=True):
    """One node's tenure of a site: its journal is numbered from seq 1."""

    epoch: int
    current: bool
    hostname: str
    hardware_id: str | None
    started_at: str | None
    ended_at: str | None
    acked_seq: int
    compacted_through: int
    entries: int


class SiteEpochs(msgspec.Struct, frozen=True):
    site: str
    epoch: int
    epochs: list[JournalEpoch]
