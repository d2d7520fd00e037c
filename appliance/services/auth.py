"""Users, tenants and tokens on the node: who may call the API, and as whom.

The account rules (Argon2id passwords, hashed tokens, dummy-hash timing) are the
project's one account system in ``towerbox_core.accounts``; this module keeps the
node's roles, its rows, and the journal entries they make. The first start creates
``admin`` with a random password in a 0600 file, and a CLI token for root's local
use, also 0600.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import msgspec
import peewee

from appliance.store import journal
from appliance.store.models import Tenant, Token, User
from towerbox_core.accounts import (
    Account,
    Accounts,
    TokenRow,
    check_password,
    random_password,
    utcnow,
)
from towerbox_core.api.accounts import Role, TenantView, TokenView, UserView
from towerbox_core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from towerbox_core.names import check_labels, check_name
from towerbox_core.secret_files import write_secret_file
from towerbox_core.wire import Actor

log = logging.getLogger(__name__)

TOKEN_PREFIX = "tbx_"  # noqa: S105 - a prefix, not a secret
SYNC_AGENT_USER = "sync-agent"


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: Role
    tenant: str | None
    token_id: int
    # The API or CLI token's name when the call used one; None for a login session.
    token_name: str | None = None

    @property
    def is_infra_admin(self) -> bool:
        return self.role is Role.INFRA_ADMIN

    def can_see(self, tenant: str | None) -> bool:
        """Infra admins and tenant-less viewers see all; others their tenant's only."""
        if self.is_infra_admin or (self.role is Role.VIEWER and self.tenant is None):
            return True
        return tenant is not None and tenant == self.tenant

    @property
    def actor(self) -> Actor:
        """How the journal records changes this principal makes."""
        return Actor(user=self.username, token=self.token_name, tenant=self.tenant)

    def require_write(self) -> None:
        if self.role is Role.VIEWER:
            raise Forbidden("viewers cannot change anything", code="read_only_role")
        self.refuse_sync_agent()

    def refuse_sync_agent(self) -> None:
        if self.role is Role.SYNC_AGENT:
            raise Forbidden(
                "the sync-agent role may only read and ack the journal, report sync "
                "status and hand over desired documents",
                code="sync_agent_scope",
            )

    def require_infra_admin(self) -> None:
        if not self.is_infra_admin:
            raise Forbidden("this needs the infra-admin role", code="infra_admin_required")

    def require_user_admin(self) -> None:
        """Infra-admins manage every user, tenant-admins those of their own tenant."""
        if not (self.is_infra_admin or self.role is Role.TENANT_ADMIN):
            raise Forbidden(
                "managing users needs the infra-admin or tenant-admin role",
                code="user_admin_required",
            )


# Roles that act inside one tenant and so need one.
_TENANT_ROLES = (Role.TENANT_ADMIN, Role.TENANT_USER)


def aware_utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes for what was written as UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _account(user: User) -> Account:
    return Account(
        id=user.id,
        username=user.username,
        password_hash=user.password_hash,
        role=user.role,
        disabled=user.disabled,
        tenant=user.tenant_id if user.tenant_id else None,
    )


class NodeAccountStore:
    """The node's users and tokens in its SQLite database; new ones are journalled."""

    def find_account(self, username: str) -> Account | None:
        user = User.get_or_none(User.username == username)
        return _account(user) if user else None

    def find_token(self, token_hash: str) -> TokenRow | None:
        row = (
            Token.select(Token, User).join(User).where(Token.token_hash == token_hash).get_or_none()
        )
        if row is None:
            return None
        expires = aware_utc(row.expires_at) if row.expires_at is not None else None
        return TokenRow(row.id, _account(row.user), expires, row.name, row.kind)

    def add_account(self, username: str, password_hash: str, role: str, tenant: str | None) -> None:
        if tenant is not None and not Tenant.select().where(Tenant.name == tenant).exists():
            raise NotFound(f"no tenant {tenant!r}", code="tenant_not_found", field="tenant")
        try:
            with journal.write_transaction():
                User.create(
                    username=username, password_hash=password_hash, role=role, tenant=tenant
                )
                journal.append("user.created", "user", username, {"role": role, "tenant": tenant})
        except peewee.IntegrityError as err:
            raise Conflict(f"user {username!r} exists", code="user_exists") from err

    def add_token(
        self,
        account: Account,
        token_hash: str,
        name: str,
        kind: str,
        expires_at: dt.datetime | None,
    ) -> int:
        # A login may use the disk's reserve: an operator must still be able to look
        # at a node whose disk is full.
        with journal.write_transaction(may_use_reserve=kind == "login"):
            row = Token.create(
                user=account.id, token_hash=token_hash, name=name, kind=kind, expires_at=expires_at
            )
            if kind != "login":  # logins are too frequent to be worth shipping
                journal.append(
                    "token.created", "token", str(row.id), {"name": name, "user": account.username}
                )
        return int(row.id)


def sign_journal_as(principal: Principal) -> None:
    """Record ``principal`` as the actor of what the current request journals."""
    journal.set_actor(principal.actor)


class AuthService:
    def __init__(self, login_ttl_s: int) -> None:
        self.login_ttl = dt.timedelta(seconds=login_ttl_s)
        self.accounts = Accounts(
            NodeAccountStore(), token_prefix=TOKEN_PREFIX, login_ttl_s=login_ttl_s
        )

    # -- first start -------------------------------------------------------------

    def bootstrap(self, password_file: Path, cli_token_file: Path) -> bool:
        """Create the admin user and the CLI token when missing. True when created."""
        created = False
        if not User.select().where(User.username == "admin").exists():
            password = random_password()
            # The file first: a disk too full for it must not leave an admin whose
            # password nobody knows (the next start writes both again).
            write_secret_file(password_file, password + "\n")
            self.create_user("admin", password, Role.INFRA_ADMIN, None)
            log.warning("created user 'admin'; its password is in %s", password_file)
            created = True
        if not cli_token_file.exists():
            token = self._issue("admin", "cli", "cli")
            write_secret_file(cli_token_file, token + "\n")
            log.info("local CLI token written to %s", cli_token_file)
        return created

    # -- login and tokens --------------------------------------------------------

    def login(self, username: str, password: str) -> tuple[str, dt.datetime]:
        return self.accounts.login(username, password)

    def authenticate(self, token: str) -> Principal:
        row = self.accounts.authenticate(token)
        user = row.account
        token_name = None if row.kind == "login" else row.name
        return Principal(user.id, user.username, Role(user.role), user.tenant, row.id, token_name)

    def create_api_token(self, principal: Principal, name: str, username: str | None) -> str:
        check_name("token", name)
        principal.refuse_sync_agent()
        target = principal.username if username is None else username
        if target != principal.username:
            principal.require_infra_admin()
        owner = self.accounts.store.find_account(target)
        if owner is None:
            raise NotFound(f"no user {target!r}", code="user_not_found")
        expires = self._api_token_expiry(principal, owner)
        return self.accounts.issue(owner, name, "api", expires)

    def _api_token_expiry(self, principal: Principal, owner: Account) -> dt.datetime | None:
        """When a new API token for ``owner`` expires; None only when an infra-admin
        makes it (its own, or one it hands to a scraper or a tenant's automation).

        A token anyone else makes expires within the login lifetime and never after the
        token that made it: otherwise a 12-hour login becomes a permanent credential,
        and so does every token made with a long-lived one an infra-admin handed out.
        """
        if owner.role == Role.INFRA_ADMIN.value or principal.is_infra_admin:
            return None
        expires = utcnow() + self.login_ttl
        made_with = self._expiry_of(principal.token_id)
        return expires if made_with is None else min(expires, made_with)

    def _expiry_of(self, token_id: int) -> dt.datetime | None:
        row = Token.get_or_none(Token.id == token_id)
        if row is None:
            raise Unauthorized("unknown or revoked token", code="invalid_token")
        return aware_utc(row.expires_at) if row.expires_at is not None else None

    def tokens(self, principal: Principal) -> list[TokenView]:
        query = Token.select(Token, User).join(User)
        if not principal.is_infra_admin:
            query = query.where(Token.user == principal.user_id)
        return [
            TokenView(
                id=t.id,
                name=t.name,
                kind=t.kind,
                user=t.user.username,
                created_at=aware_utc(t.created_at).isoformat(),
                expires_at=aware_utc(t.expires_at).isoformat() if t.expires_at else None,
            )
            for t in query.order_by(Token.id)
        ]

    def revoke(self, principal: Principal, token_id: int) -> None:
        token = Token.get_or_none(Token.id == token_id)
        if token is None or (not principal.is_infra_admin and token.user_id != principal.user_id):
            raise NotFound(f"no token {token_id}", code="token_not_found")
        with journal.write_transaction():
            token.delete_instance()
            journal.append("token.revoked", "token", str(token_id), {"name": token.name})

    def _issue(
        self, username: str, name: str, kind: str, expires: dt.datetime | None = None
    ) -> str:
        account = self.accounts.store.find_account(username)
        if account is None:
            raise NotFound(f"no user {username!r}", code="user_not_found")
        return self.accounts.issue(account, name, kind, expires=expires)

    def sync_agent_token(self, principal: Principal, name: str) -> str:
        """A token for the edge agent (infra-admin only); makes its user when missing."""
        principal.require_infra_admin()
        check_name("token", name)
        user = User.get_or_none(User.username == SYNC_AGENT_USER)
        if user is None:
            # Nobody logs in as the agent: its password is random and thrown away.
            self.create_user(SYNC_AGENT_USER, secrets.token_urlsafe(32), Role.SYNC_AGENT, None)
            user = User.get(User.username == SYNC_AGENT_USER)
        if user.role != Role.SYNC_AGENT.value:
            raise Conflict(
                f"user {SYNC_AGENT_USER!r} exists with role {user.role}", code="user_exists"
            )
        return self._issue(SYNC_AGENT_USER, name, "api")

    # -- users and tenants ---------------------------------------------------------

    def create_user(self, username: str, password: str, role: Role, tenant: str | None) -> None:
        check_name("user", username)
        check_password(password)
        if role in _TENANT_ROLES and tenant is None:
            raise InvalidInput(f"a {role} needs a tenant", code="tenant_required", field="tenant")
        self.accounts.create(username, password, role.value, tenant)

    def add_user(
        self, principal: Principal, username: str, password: str, role: Role, tenant: str | None
    ) -> str | None:
        """A user made by ``principal``; a tenant-admin makes users of its own tenant only
        (tenant-admin, tenant-user or viewer). Returns the user's tenant."""
        principal.require_user_admin()
        if not principal.is_infra_admin:
            tenant = principal.tenant if tenant is None else tenant
            if tenant != principal.tenant:
                raise Forbidden(
                    "a tenant-admin makes users of its own tenant only",
                    code="tenant_scope",
                    field="tenant",
                )
            if role not in _TENANT_ROLES and role is not Role.VIEWER:
                raise Forbidden(
                    f"a tenant-admin cannot make a {role}: only infra-admins can",
                    code="infra_admin_required",
                    field="role",
                )
        self.create_user(username, password, role, tenant)
        return tenant

    def delete_user(self, principal: Principal, username: str) -> None:
        """Remove a user and its tokens; a tenant-admin removes its own tenant's only."""
        principal.require_user_admin()
        user = User.get_or_none(User.username == username)
        if user is None or not (principal.is_infra_admin or user.tenant_id == principal.tenant):
            # Another tenant's user is answered like one that does not exist.
            raise NotFound(f"no user {username!r}", code="user_not_found")
        if user.id == principal.user_id:
            raise Conflict(
                "you cannot remove yourself; another admin can", code="cannot_remove_self"
            )
        with journal.write_transaction():
            Token.delete().where(Token.user == user.id).execute()
            user.delete_instance()
            journal.append("user.deleted", "user", username, None)

    def list_users(self, principal: Principal | None = None) -> list[UserView]:
        """Every user for infra-admins (or no principal: the node itself), a
        tenant-admin's own tenant's users for a tenant-admin."""
        query = User.select().order_by(User.username)
        if principal is not None:
            principal.require_user_admin()
            if not principal.is_infra_admin:
                query = query.where(User.tenant == principal.tenant)
        return [
            UserView(username=u.username, role=u.role, tenant=u.tenant_id, disabled=u.disabled)
            for u in query
        ]

    def create_tenant(
        self, name: str, description: str, labels: dict[str, str] | None = None
    ) -> None:
        check_name("tenant", name)
        labels = labels or {}
        check_labels(labels)
        state = {"description": description, "labels": labels}
        try:
            with journal.write_transaction():
                Tenant.create(name=name, description=description, labels=encode_labels(labels))
                journal.append("tenant.created", "tenant", name, state)
        except peewee.IntegrityError as err:
            raise Conflict(f"tenant {name!r} exists", code="tenant_exists") from err

    def list_tenants(self, principal: Principal) -> list[TenantView]:
        return [
            TenantView(name=t.name, description=t.description, labels=tenant_labels(t))
            for t in Tenant.select().order_by(Tenant.name)
            if principal.can_see(t.name)
        ]


def tenant_labels(row: Tenant) -> dict[str, str]:
    labels: dict[str, str] = msgspec.json.decode(row.labels or "{}")
    return labels


def encode_labels(labels: dict[str, str]) -> str:
    return msgspec.json.encode(dict(sorted(labels.items()))).decode()


__all__ = ["AuthService", "Principal", "Role", "aware_utc", "encode_labels", "tenant_labels"]
