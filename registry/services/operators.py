"""Operators of the registry: users with a role, login and API tokens.

Passwords are hashed with Argon2id; tokens are 256-bit random strings of which the
database keeps only the SHA-256. The first start creates ``admin`` with a random
password in a 0600 file, and a CLI token for the local ``towerbox registry`` commands.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import argon2
import peewee

from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from appliance.services.auth import write_secret_file
from registry.store.models import Operator, OperatorToken, db_proxy, ms_to_iso, now_ms

log = logging.getLogger(__name__)

TOKEN_PREFIX = "tbr_"  # noqa: S105 - a prefix, not a secret
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_hasher = argon2.PasswordHasher()
# Verified against when a username does not exist, so a wrong name costs as much
# time as a wrong password and does not reveal which operators exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class OperatorRole(enum.StrEnum):
    ADMIN = "admin"  # everything
    VIEWER = "viewer"  # reads only


@dataclass(frozen=True)
class OperatorPrincipal:
    operator_id: int
    username: str
    role: OperatorRole
    token_id: int

    def require_write(self) -> None:
        if self.role is not OperatorRole.ADMIN:
            raise Forbidden("this needs the admin role; viewers only read", code="admin_required")


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def check_name(kind: str, value: str, field: str = "name") -> None:
    if not _NAME_RE.match(value):
        raise InvalidInput(
            f"{kind} name {value!r} is not valid: use 1 to 63 letters, digits, '-', '_' "
            "or '.', starting with a letter or digit",
            code="invalid_name",
            field=field,
        )


class OperatorService:
    def __init__(self, login_ttl_s: int) -> None:
        self._login_ttl_ms = login_ttl_s * 1000

    def bootstrap(self, password_file: Path, cli_token_file: Path) -> bool:
        """Create ``admin`` and the CLI token when missing. True when admin was created."""
        created = False
        if not Operator.select().where(Operator.username == "admin").exists():
            password = secrets.token_urlsafe(18)
            try:
                self.create("admin", password, OperatorRole.ADMIN)
            except Conflict:
                return False  # another worker created it a moment ago
            write_secret_file(password_file, password + "\n")
            log.warning("created operator 'admin'; its password is in %s", password_file)
            created = True
        if created or not cli_token_file.exists():
            admin = Operator.get(Operator.username == "admin")
            write_secret_file(cli_token_file, self._issue(admin, "cli", "cli", None) + "\n")
        return created

    def reset_password(self, username: str, password_file: Path) -> None:
        operator = Operator.get_or_none(Operator.username == username)
        if operator is None:
            raise NotFound(f"no operator {username!r}", code="operator_not_found")
        password = secrets.token_urlsafe(18)
        with db_proxy.obj.atomic():
            Operator.update(password_hash=_hasher.hash(password)).where(
                Operator.id == operator.id
            ).execute()
            # Whoever knew the old password may hold a login token: end those too.
            OperatorToken.delete().where(
                OperatorToken.operator == operator.id, OperatorToken.kind == "login"
            ).execute()
        write_secret_file(password_file, password + "\n")

    def login(self, username: str, password: str) -> tuple[str, int]:
        operator = Operator.get_or_none(Operator.username == username)
        try:
            _hasher.verify(operator.password_hash if operator else _DUMMY_HASH, password)
        except argon2.exceptions.VerificationError:
            operator = None
        if operator is None or operator.disabled:
            log.warning("failed registry login for %r", username)
            raise Unauthorized("wrong username or password", code="bad_credentials")
        expires = now_ms() + self._login_ttl_ms
        return self._issue(operator, "login", "login", expires), expires

    def authenticate(self, token: str) -> OperatorPrincipal:
        if not token.startswith(TOKEN_PREFIX):
            raise Unauthorized(
                "malformed operator token; get one from POST /api/v1/auth/login",
                code="invalid_token",
            )
        row = (
            OperatorToken.select(OperatorToken, Operator)
            .join(Operator)
            .where(OperatorToken.token_hash == hash_secret(token))
            .get_or_none()
        )
        if row is None or row.operator.disabled:
            raise Unauthorized("unknown or revoked token", code="invalid_token")
        if row.expires_at is not None and row.expires_at < now_ms():
            raise Unauthorized("token expired; log in again", code="token_expired")
        op = row.operator
        return OperatorPrincipal(op.id, op.username, OperatorRole(op.role), row.id)

    def create(self, username: str, password: str, role: OperatorRole) -> None:
        check_name("operator", username, "username")
        if len(password) < 12:
            raise InvalidInput(
                "passwords need at least 12 characters", code="weak_password", field="password"
            )
        try:
            with db_proxy.obj.atomic():
                Operator.create(
                    username=username, password_hash=_hasher.hash(password), role=role.value
                )
        except peewee.IntegrityError as err:
            raise Conflict(f"operator {username!r} exists", code="operator_exists") from err

    def list_operators(self) -> list[dict[str, object]]:
        return [
            {"username": o.username, "role": o.role, "disabled": o.disabled}
            for o in Operator.select().order_by(Operator.username)
        ]

    def create_token(self, principal: OperatorPrincipal, name: str) -> str:
        check_name("token", name)
        operator = Operator.get_by_id(principal.operator_id)
        return self._issue(operator, name, "api", None)

    def list_tokens(self, principal: OperatorPrincipal) -> list[dict[str, object]]:
        query = OperatorToken.select(OperatorToken, Operator).join(Operator)
        if principal.role is not OperatorRole.ADMIN:
            query = query.where(OperatorToken.operator == principal.operator_id)
        return [
            {
                "id": t.id,
                "name": t.name,
                "kind": t.kind,
                "operator": t.operator.username,
                "created_at": ms_to_iso(t.created_at),
                "expires_at": ms_to_iso(t.expires_at),
            }
            for t in query.order_by(OperatorToken.id)
        ]

    def revoke(self, principal: OperatorPrincipal, token_id: int) -> None:
        token = OperatorToken.get_or_none(OperatorToken.id == token_id)
        if token is None or (
            principal.role is not OperatorRole.ADMIN and token.operator_id != principal.operator_id
        ):
            raise NotFound(f"no token {token_id}", code="token_not_found")
        token.delete_instance()

    def _issue(self, operator: Operator, name: str, kind: str, expires: int | None) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        OperatorToken.create(
            operator=operator,
            token_hash=hash_secret(token),
            name=name,
            kind=kind,
            expires_at=expires,
        )
        return token
