"""Provisioning credentials: what a freshly installed node carries to enroll itself.

A credential (``tbp_...``) is a 256-bit random token of which the registry keeps the
SHA-256, like operator tokens and site secrets. It names the labels (label groups)
and region of the sites it creates, and the hardware identities it may create them
for (its allow-list). It is long-lived unless it is given a lifetime; revoking it
keeps its row, so a refused node's log and the list say why.
"""

from __future__ import annotations

import logging
import re
import secrets

import msgspec

from registry.store.models import ProvisioningCredential, ms_to_iso, now_ms
from towerbox_core.api.provisioning import (
    HARDWARE_ID_MAX,
    AllowedIdentity,
    ProvisioningCredentialCreate,
    ProvisioningCredentialCreated,
    ProvisioningCredentialInfo,
    ProvisioningCredentialList,
)
from towerbox_core.errors import InvalidInput, NotFound, Unauthorized
from towerbox_core.names import check_labels, check_name
from towerbox_core.secret_files import hash_token

log = logging.getLogger(__name__)

CREDENTIAL_PREFIX = "tbp_"
MAX_ALLOW = 10_000
MAX_LIFETIME_S = 5 * 366 * 86400
MAX_ID = 2**31 - 1
_HARDWARE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")


def check_hardware_id(value: str, field: str = "hardware_id") -> str:
    """A machine-id or DMI serial: 1 to 128 letters, digits, '_', '.', ':' or '-'."""
    if not 0 < len(value) <= HARDWARE_ID_MAX or _HARDWARE_ID_RE.fullmatch(value) is None:
        raise InvalidInput(
            f"hardware id {value[:40]!r} is not valid: use 1 to {HARDWARE_ID_MAX} letters, "
            "digits, '_', '.', ':' or '-', starting with a letter or digit (a machine-id "
            "or a DMI serial)",
            code="invalid_hardware_id",
            field=field,
        )
    return value


class CredentialService:
    def create(
        self, data: ProvisioningCredentialCreate, created_by: str
    ) -> ProvisioningCredentialCreated:
        check_name("credential", data.name)
        if data.region:
            check_name("region", data.region, field="region")
        check_labels(data.labels)
        allow = _allow_list(data.allow)
        expires = None
        if data.expires_in_s is not None:
            if not 0 < data.expires_in_s <= MAX_LIFETIME_S:
                raise InvalidInput(
                    "expires_in_s must be between 1 s and 5 years (leave it out for a "
                    "credential that does not expire)",
                    code="invalid_ttl",
                    field="expires_in_s",
                )
            expires = now_ms() + data.expires_in_s * 1000
        token = CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
        row = ProvisioningCredential.create(
            name=data.name,
            token_hash=hash_token(token),
            labels=_json(data.labels),
            region=data.region,
            allow=_json(allow),
            created_by=created_by,
            expires_at=expires,
        )
        log.info(
            "provisioning credential %s (%d) created by %s for %d identities",
            data.name,
            row.id,
            created_by,
            len(allow),
        )
        info = _info(row)
        return ProvisioningCredentialCreated(**msgspec.structs.asdict(info), token=token)

    @staticmethod
    def list() -> ProvisioningCredentialList:
        rows = ProvisioningCredential.select().order_by(ProvisioningCredential.id)
        return ProvisioningCredentialList(credentials=[_info(r) for r in rows])

    @staticmethod
    def revoke(credential_id: int) -> None:
        row = None
        if 0 < credential_id <= MAX_ID:  # past the column's range no row can match
            row = ProvisioningCredential.get_or_none(ProvisioningCredential.id == credential_id)
        if row is None:
            raise NotFound(
                f"no provisioning credential {credential_id}", code="credential_not_found"
            )
        if row.revoked_at is None:
            row.revoked_at = now_ms()
            row.save()
            log.info("provisioning credential %s (%d) revoked", row.name, row.id)

    @staticmethod
    def authenticate(token: str, now: int) -> ProvisioningCredential:
        if not token.startswith(CREDENTIAL_PREFIX):
            raise Unauthorized(
                "send a provisioning credential: 'Authorization: Bearer tbp_...'",
                code="provisioning_credential_invalid",
            )
        # Looked up by its SHA-256 through a unique index: the comparison never runs
        # over the secret itself, so its timing tells nothing about it.
        row = ProvisioningCredential.get_or_none(
            ProvisioningCredential.token_hash == hash_token(token)
        )
        if row is None:
            raise Unauthorized(
                "unknown provisioning credential", code="provisioning_credential_invalid"
            )
        if row.revoked_at is not None:
            raise Unauthorized(
                f"provisioning credential {row.name!r} was revoked; install a current one",
                code="provisioning_credential_revoked",
            )
        if row.expires_at is not None and row.expires_at <= now:
            raise Unauthorized(
                f"provisioning credential {row.name!r} expired at "
                f"{ms_to_iso(row.expires_at)}; install a current one",
                code="provisioning_credential_expired",
            )
        return row


def _allow_list(entries: list[str | AllowedIdentity]) -> list[AllowedIdentity]:
    if len(entries) > MAX_ALLOW:
        raise InvalidInput(
            f"an allow-list holds at most {MAX_ALLOW} identities", code="allow_list_too_long"
        )
    seen: dict[str, AllowedIdentity] = {}
    for index, raw in enumerate(entries):
        entry = AllowedIdentity(raw) if isinstance(raw, str) else raw
        check_hardware_id(entry.hardware_id, field=f"allow[{index}]")
        if entry.site is not None:
            check_name("site", entry.site, field=f"allow[{index}].site")
        if entry.hardware_id in seen:
            raise InvalidInput(
                f"allow[{index}]: hardware id {entry.hardware_id!r} is listed twice",
                code="duplicate_identity",
                field=f"allow[{index}]",
            )
        seen[entry.hardware_id] = entry
    return list(seen.values())


def allowed(credential: ProvisioningCredential, hardware_id: str) -> AllowedIdentity | None:
    for entry in msgspec.json.decode(credential.allow, type=list[AllowedIdentity]):
        if secrets.compare_digest(entry.hardware_id, hardware_id):
            return entry
    return None


def _info(row: ProvisioningCredential) -> ProvisioningCredentialInfo:
    return ProvisioningCredentialInfo(
        id=row.id,
        name=row.name,
        labels=msgspec.json.decode(row.labels),
        region=row.region,
        allow=msgspec.json.decode(row.allow, type=list[AllowedIdentity]),
        created_at=ms_to_iso(row.created_at),
        created_by=row.created_by,
        expires_at=ms_to_iso(row.expires_at),
        revoked_at=ms_to_iso(row.revoked_at),
        last_used_at=ms_to_iso(row.last_used_at),
        uses=row.uses,
    )


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()
