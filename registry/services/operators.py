"""Operators of the registry: users with a role, login and API tokens.

Passwords are hashed with Argon2id; tokens are 256-bit random strings of which the
database keeps only the SHA-256. The first start creates ``admin`` with a random
password in a 0600 file, and a CLI token for the local ``towerbox registry`` commands.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import peewee

from registry.store.models import Operator, OperatorToken, db_proxy, ms_to_iso
from towerbox_core.accounts import (
    Account,
    Accounts,
    TokenRow,
    hash_password,
    random_password,
)
from towerbox_core.api.fleet import ApiTokenInfo, OperatorInfo, OperatorRole
from towerbox_core.errors import Conflict, Forbidden, NotFound
from towerbox_core.names import check_name
from towerbox_core.secret_files import write_secret_file

log = logging.getLogger(__name__)

TOKEN_PREFIX = "tbr_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class OperatorPrincipal:
    operator_id: int
    username: str
    role: OperatorRole
    token_id: int

    def require_write(self) -> None:
        if self.role is not OperatorRole.ADMIN:
            raise Forbidden("this needs the admin role; viewers only read", code="admin_required")


def _to_ms(value: dt.datetime | None) -> int | None:
    return int(value.timestamp() * 1000) if value is not None else None


def _account(op: Operator) -> Account:
    return Account(op.id, op.username, op.password_hash, op.role, op.disabled)


class RegistryAccountStore:
    """Operators and their tokens in the registry database (times in epoch ms)."""

    def find_account(self, username: str) -> Account | None:
        op = Operator.get_or_none(Operator.username == username)
        return _account(op) if op else None

    def find_token(self, token_hash: str) -> TokenRow | None:
        row = (
            OperatorToken.select(OperatorToken, Operator)
            .join(Operator)
            .where(OperatorToken.token_hash == token_hash)
            .get_or_none()
        )
        if row is None:
            return None
        expires = (
            dt.datetime.fromtimestamp(row.expires_at / 1000, dt.UTC)
            if row.expires_at is not None
            else None
        )
        return TokenRow(row.id, _account(row.operator), expires)

    def add_account(self, username: str, password_hash: str, role: str, tenant: str | None) -> None:
        try:
            with db_proxy.obj.atomic():
                Operator.create(username=username, password_hash=password_hash, role=role)
        except peewee.IntegrityError as err:
            raise Conflict(f"operator {username!r} exists", code="operator_exists") from err

    def add_token(
        self,
        account: Account,
        token_hash: str,
        name: str,
        kind: str,
        expires_at: dt.datetime | None,
    ) -> int:
        row = OperatorToken.create(
            operator=account.id,
            token_hash=token_hash,
            name=name,
            kind=kind,
            expires_at=_to_ms(expires_at),
        )
        return int(row.id)


class OperatorService:
    def __init__(self, login_ttl_s: int) -> None:
        self.accounts = Accounts(
            RegistryAccountStore(),
            token_prefix=TOKEN_PREFIX,
            login_ttl_s=login_ttl_s,
            who="operator",
            token_hint="get an operator token from POST /api/v1/auth/login",  # noqa: S106
        )

    def bootstrap(self, password_file: Path, cli_token_file: Path) -> bool:
        """Create ``admin`` and the CLI token when missing. True when admin was created."""
        created = False
        if not Operator.select().where(Operator.username == "admin").exists():
            password = random_password()
            try:
                self.create("admin", password, OperatorRole.ADMIN)
            except Conflict:
                return False  # another worker created it a moment ago
            write_secret_file(password_file, password + "\n")
            log.warning("created operator 'admin'; its password is in %s", password_file)
            created = True
        if created or not cli_token_file.exists():
            write_secret_file(cli_token_file, self._issue(principal_id=None, name="cli") + "\n")
        return created

    def reset_password(self, username: str, password_file: Path) -> None:
        operator = Operator.get_or_none(Operator.username == username)
        if operator is None:
            raise NotFound(f"no operator {username!r}", code="operator_not_found")
        password = random_password()
        with db_proxy.obj.atomic():
            Operator.update(password_hash=hash_password(password)).where(
                Operator.id == operator.id
            ).execute()
            # Whoever knew the old password may hold a login token: end those too.
            OperatorToken.delete().where(
                OperatorToken.operator == operator.id, OperatorToken.kind == "login"
            ).execute()
        write_secret_file(password_file, password + "\n")

    def login(self, username: str, password: str) -> tuple[str, int]:
        token, expires = self.accounts.login(username, password)
        return token, int(expires.timestamp() * 1000)

    def authenticate(self, token: str) -> OperatorPrincipal:
        row = self.accounts.authenticate(token)
        op = row.account
        return OperatorPrincipal(op.id, op.username, OperatorRole(op.role), row.id)

    def create(self, username: str, password: str, role: OperatorRole) -> None:
        self.accounts.create(username, password, role.value, field="username")

    def list_operators(self) -> list[OperatorInfo]:
        return [
            OperatorInfo(username=o.username, role=OperatorRole(o.role), disabled=o.disabled)
            for o in Operator.select().order_by(Operator.username)
        ]

    def create_token(self, principal: OperatorPrincipal, name: str) -> str:
        check_name("token", name)
        return self._issue(principal.operator_id, name, "api")

    def list_tokens(self, principal: OperatorPrincipal) -> list[ApiTokenInfo]:
        query = OperatorToken.select(OperatorToken, Operator).join(Operator)
        if principal.role is not OperatorRole.ADMIN:
            query = query.where(OperatorToken.operator == principal.operator_id)
        return [
            ApiTokenInfo(
                id=t.id,
                name=t.name,
                kind=t.kind,
                operator=t.operator.username,
                created_at=ms_to_iso(t.created_at),
                expires_at=ms_to_iso(t.expires_at),
            )
            for t in query.order_by(OperatorToken.id)
        ]

    def revoke(self, principal: OperatorPrincipal, token_id: int) -> None:
        token = OperatorToken.get_or_none(OperatorToken.id == token_id)
        if token is None or (
            principal.role is not OperatorRole.ADMIN and token.operator_id != principal.operator_id
        ):
            raise NotFound(f"no token {token_id}", code="token_not_found")
        token.delete_instance()

    def _issue(self, principal_id: int | None, name: str, kind: str = "cli") -> str:
        """A token that does not expire, for an operator (by id) or for ``admin``."""
        if principal_id is None:
            operator = Operator.get(Operator.username == "admin")
        else:
            operator = Operator.get_by_id(principal_id)
        return self.accounts.issue(_account(operator), name, kind, expires=None)
