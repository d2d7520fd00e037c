"""One account system: users with a role, passwords, login and API tokens.

The appliance (node users, tenants) and the registry (fleet operators) both use it;
each keeps its rows in its own database through a small ``AccountStore`` adapter
and names its own roles. What is the same everywhere lives here once:

- passwords are hashed with Argon2id, and a login for a name that does not exist is
  verified against a dummy hash, so it costs as much time as a wrong password and
  does not reveal which names exist;
- tokens are a program prefix and 256 random bits; a database keeps only their
  SHA-256 (``secret_files.hash_token``);
- login tokens expire, tokens made on purpose (``api``, ``cli``) do not.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import secrets
from dataclasses import dataclass
from typing import Protocol

import argon2

from towerbox_core.errors import InvalidInput, Unauthorized
from towerbox_core.names import check_name
from towerbox_core.secret_files import hash_token, new_token

log = logging.getLogger(__name__)

MIN_PASSWORD_LEN = 12

_hasher = argon2.PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when a username does not exist (see the module's docstring).

    Made at the first login, not at import: every process that imports this module
    (each daemon start, the registry's workers) would otherwise pay an Argon2 hash,
    most of a second, for a login that may never come.
    """
    return _hasher.hash(secrets.token_hex(16))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing account costs the same time."""
    # Made on the first login whether or not its account exists: that login is the
    # slow one either way, and no later one tells the two apart.
    dummy = _dummy_hash()
    try:
        return bool(_hasher.verify(stored_hash or dummy, password)) and bool(stored_hash)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        log.error("a stored password hash is not an Argon2 hash; refusing the login")
        return False


def random_password() -> str:
    """A first password for ``admin``, written to a 0600 file."""
    return secrets.token_urlsafe(18)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise InvalidInput(
            f"passwords need at least {MIN_PASSWORD_LEN} characters",
            code="weak_password",
            field="password",
        )


@dataclass(frozen=True)
class Account:
    """A user as the store keeps it."""

    id: int
    username: str
    password_hash: str
    role: str
    disabled: bool = False
    tenant: str | None = None


@dataclass(frozen=True)
class TokenRow:
    """A token as the store keeps it, with the account it belongs to."""

    id: int
    account: Account
    expires_at: dt.datetime | None  # aware UTC; None for tokens that do not expire
    name: str = ""  # the name its owner gave it (login tokens are named by the program)
    kind: str = ""  # login | api | cli on the node; the registry's own kinds there


class AccountStore(Protocol):
    """Where one program keeps its accounts and tokens."""

    def find_account(self, username: str) -> Account | None: ...

    def find_token(self, token_hash: str) -> TokenRow | None: ...

    def add_account(self, username: str, password_hash: str, role: str, tenant: str | None) -> None:
        """Store a new account; raise ``Conflict`` when the name is taken."""

    def add_token(
        self,
        account: Account,
        token_hash: str,
        name: str,
        kind: str,
        expires_at: dt.datetime | None,
    ) -> int:
        """Store a token's hash; return its id."""


class Accounts:
    """Login, authentication, new accounts and tokens over one store."""

    def __init__(
        self,
        store: AccountStore,
        *,
        token_prefix: str,
        login_ttl_s: int,
        who: str = "user",
        token_hint: str = "",
    ) -> None:
        self.store = store
        self.token_prefix = token_prefix
        self._login_ttl = dt.timedelta(seconds=login_ttl_s)
        self._who = who  # how errors and logs name an account: "user", "operator"
        self._token_hint = token_hint  # where a caller gets a token, for the error

    def login(self, username: str, password: str) -> tuple[str, dt.datetime]:
        """A login token and when it expires; one error for a wrong name or password."""
        account = self.store.find_account(username)
        if not verify_password(account.password_hash if account else None, password):
            account = None
        if account is None or account.disabled:
            log.warning("failed login for %s %r", self._who, username)
            raise Unauthorized("wrong username or password", code="bad_credentials")
        expires = utcnow() + self._login_ttl
        return self.issue(account, "login", "login", expires), expires

    def authenticate(self, token: str) -> TokenRow:
        if not token.startswith(self.token_prefix):
            hint = f"; {self._token_hint}" if self._token_hint else ""
            raise Unauthorized(f"malformed token{hint}", code="invalid_token")
        row = self.store.find_token(hash_token(token))
        if row is None or row.account.disabled:
            raise Unauthorized("unknown or revoked token", code="invalid_token")
        if row.expires_at is not None and row.expires_at < utcnow():
            raise Unauthorized("token expired; log in again", code="token_expired")
        return row

    def create(
        self,
        username: str,
        password: str,
        role: str,
        tenant: str | None = None,
        *,
        field: str = "name",
    ) -> None:
        check_name(self._who, username, field=field)
        check_password(password)
        self.store.add_account(username, hash_password(password), role, tenant)

    def issue(self, account: Account, name: str, kind: str, expires: dt.datetime | None) -> str:
        """A new token for ``account``; the store keeps only its hash."""
        token = new_token(self.token_prefix)
        self.store.add_token(account, hash_token(token), name, kind, expires)
        return token
