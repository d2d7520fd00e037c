from __future__ import annotations

import datetime as dt
from pathlib import Path

import peewee
import pytest

from appliance.services.auth import AuthService, Principal, Role
from appliance.store.db import open_database
from appliance.store.models import Tenant, Token, User
from towerbox_core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized


@pytest.fixture
def auth(tmp_path: Path) -> AuthService:
    db: peewee.SqliteDatabase = open_database(tmp_path / "state.db")
    service = AuthService(login_ttl_s=3600)
    service.bootstrap(tmp_path / "admin-password", tmp_path / "cli-token")
    yield service
    db.close()


def test_bootstrap_writes_private_secrets_once(auth: AuthService, tmp_path: Path) -> None:
    for name in ("admin-password", "cli-token"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    password = (tmp_path / "admin-password").read_text().strip()
    assert len(password) >= 16
    assert not auth.bootstrap(tmp_path / "admin-password", tmp_path / "cli-token")
    assert (tmp_path / "admin-password").read_text().strip() == password


def test_secrets_are_hashed_at_rest(auth: AuthService, tmp_path: Path) -> None:
    password = (tmp_path / "admin-password").read_text().strip()
    token, _ = auth.login("admin", password)
    admin = User.get(User.username == "admin")
    assert admin.password_hash.startswith("$argon2id$")
    assert password not in admin.password_hash
    stored = [t.token_hash for t in Token.select()]
    assert token not in stored
    assert all(len(h) == 64 for h in stored)


def test_login_and_token_life(auth: AuthService, tmp_path: Path) -> None:
    password = (tmp_path / "admin-password").read_text().strip()
    token, expires = auth.login("admin", password)
    principal = auth.authenticate(token)
    assert principal.role is Role.INFRA_ADMIN
    assert expires > dt.datetime.now(dt.UTC)
    auth.revoke(principal, principal.token_id)
    with pytest.raises(Unauthorized, match="revoked"):
        auth.authenticate(token)


@pytest.mark.parametrize(("user", "password"), [("admin", "wrong-password"), ("nobody", "x")])
def test_bad_credentials_say_nothing_more(auth: AuthService, user: str, password: str) -> None:
    with pytest.raises(Unauthorized) as err:
        auth.login(user, password)
    assert err.value.code == "bad_credentials"


def test_expired_and_malformed_tokens(auth: AuthService, tmp_path: Path) -> None:
    password = (tmp_path / "admin-password").read_text().strip()
    token, _ = auth.login("admin", password)
    Token.update(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).execute()
    with pytest.raises(Unauthorized) as err:
        auth.authenticate(token)
    assert err.value.code == "token_expired"
    with pytest.raises(Unauthorized) as err:
        auth.authenticate("not-a-token")
    assert err.value.code == "invalid_token"


def test_users_tenants_and_roles(auth: AuthService) -> None:
    auth.create_tenant("acme", "Acme robotics")
    with pytest.raises(Conflict):
        auth.create_tenant("acme", "")
    with pytest.raises(InvalidInput, match="tenant-admin needs a tenant"):
        auth.create_user("alice", "long-enough-password", Role.TENANT_ADMIN, None)
    with pytest.raises(InvalidInput, match="at least 12"):
        auth.create_user("alice", "short", Role.TENANT_ADMIN, "acme")
    auth.create_user("alice", "long-enough-password", Role.TENANT_ADMIN, "acme")
    auth.create_user("victor", "long-enough-password", Role.VIEWER, None)
    with pytest.raises(Conflict):
        auth.create_user("alice", "long-enough-password", Role.VIEWER, None)
    alice = auth.authenticate(auth.login("alice", "long-enough-password")[0])
    victor = auth.authenticate(auth.login("victor", "long-enough-password")[0])
    assert alice.can_see("acme") and not alice.can_see("other") and not alice.can_see(None)
    assert victor.can_see("acme") and victor.can_see(None)
    with pytest.raises(Forbidden):
        victor.require_write()
    with pytest.raises(Forbidden):
        auth.create_api_token(alice, "ci", "admin")
    token = auth.create_api_token(alice, "ci", None)
    assert auth.authenticate(token).username == "alice"
    assert {t.user for t in auth.tokens(alice)} == {"alice"}


def test_a_token_never_outlives_the_login_that_made_it(auth: AuthService, tmp_path: Path) -> None:
    auth.create_tenant("acme", "")
    auth.create_user("watcher", "long-enough-pw", Role.VIEWER, "acme")
    auth.create_user("boss", "long-enough-pw", Role.TENANT_ADMIN, "acme")
    for username in ("watcher", "boss"):
        login, login_expires = auth.login(username, "long-enough-pw")
        minted = auth.create_api_token(auth.authenticate(login), "mine", None)
        row = Token.get(Token.name == "mine")
        assert row.expires_at is not None
        assert row.expires_at.replace(tzinfo=dt.UTC) == login_expires
        # ...so when the login expires, so does the token it made.
        Token.update(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).where(
            Token.id == row.id
        ).execute()
        with pytest.raises(Unauthorized) as err:
            auth.authenticate(minted)
        assert err.value.code == "token_expired"
        row.delete_instance()
    # An infra-admin's API tokens are the ones that do not expire.
    admin_login, _ = auth.login("admin", (tmp_path / "admin-password").read_text().strip())
    auth.create_api_token(auth.authenticate(admin_login), "forever", None)
    assert Token.get(Token.name == "forever").expires_at is None


def _admin(auth: AuthService, tmp_path: Path) -> Principal:
    """The infra-admin as its CLI token (which does not expire)."""
    return auth.authenticate((tmp_path / "cli-token").read_text().strip())


@pytest.mark.parametrize("role", [Role.VIEWER, Role.TENANT_ADMIN, Role.TENANT_USER])
def test_tokens_made_with_a_token_an_admin_handed_out_expire(
    auth: AuthService, tmp_path: Path, role: Role
) -> None:
    auth.create_tenant("acme", "")
    auth.create_user("watcher", "long-enough-pw", role, "acme")
    # An infra-admin hands a token out on purpose (a scraper, a tenant's automation):
    # it lasts until revoked.
    given = auth.create_api_token(_admin(auth, tmp_path), "handed-over", "watcher")
    row = Token.get(Token.name == "handed-over")
    assert row.expires_at is None
    # The watcher's own tokens, made with it, expire within the login lifetime (3600 s
    # in this fixture): a long-lived token does not breed more.
    before = dt.datetime.now(dt.UTC)
    watcher = auth.authenticate(given)
    auth.create_api_token(watcher, "chained", None)
    chained = Token.get(Token.name == "chained").expires_at
    assert chained is not None
    assert chained.replace(tzinfo=dt.UTC) <= before + dt.timedelta(hours=1, seconds=5)
    # And never after the token that made them.
    Token.update(expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).where(
        Token.id == row.id
    ).execute()
    auth.create_api_token(watcher, "shorter", None)
    shorter = Token.get(Token.name == "shorter").expires_at
    assert shorter is not None
    assert shorter.replace(tzinfo=dt.UTC) <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    made_by_watcher = (
        Token.select()
        .join(User)
        .where((User.username == "watcher") & (Token.name != "handed-over"))
    )
    assert all(t.expires_at is not None for t in made_by_watcher)


def test_an_infra_admins_tokens_do_not_expire_whoever_makes_them(
    auth: AuthService, tmp_path: Path
) -> None:
    auth.create_user("ops", "long-enough-pw", Role.INFRA_ADMIN, None)
    auth.create_api_token(_admin(auth, tmp_path), "for-ops", "ops")
    auth.create_api_token(_principal(auth, "ops"), "ops-own", None)
    assert Token.get(Token.name == "for-ops").expires_at is None
    assert Token.get(Token.name == "ops-own").expires_at is None


def test_a_token_for_nobody_is_refused(auth: AuthService, tmp_path: Path) -> None:
    with pytest.raises(NotFound) as err:
        auth.create_api_token(_admin(auth, tmp_path), "ghost", "nobody")
    assert err.value.code == "user_not_found"
    assert not Token.select().where(Token.name == "ghost").exists()


@pytest.mark.parametrize("kind", ["tenant", "user"])
def test_names_ending_in_a_newline_are_refused(auth: AuthService, kind: str) -> None:
    create = {
        "tenant": lambda: auth.create_tenant("ab\n", ""),
        "user": lambda: auth.create_user("ab\n", "long-enough-pw", Role.VIEWER, None),
    }[kind]
    with pytest.raises(InvalidInput) as err:
        create()
    assert err.value.code == "invalid_name"
    assert not User.select().where(User.username == "ab\n").exists()
    assert not Tenant.select().where(Tenant.name == "ab\n").exists()


def _principal(auth: AuthService, username: str) -> Principal:
    token, _ = auth.login(username, "long-enough-pw")
    return auth.authenticate(token)


def test_a_tenant_admin_manages_the_users_of_its_own_tenant_only(auth: AuthService) -> None:
    auth.create_tenant("acme", "")
    auth.create_tenant("other", "")
    auth.create_user("boss", "long-enough-pw", Role.TENANT_ADMIN, "acme")
    auth.create_user("stranger", "long-enough-pw", Role.TENANT_USER, "other")
    boss = _principal(auth, "boss")
    # Its own tenant by default, and the tenant roles only.
    assert auth.add_user(boss, "dev", "long-enough-pw", Role.TENANT_USER, None) == "acme"
    assert auth.add_user(boss, "eyes", "long-enough-pw", Role.VIEWER, "acme") == "acme"
    for role, tenant, code in [
        (Role.TENANT_USER, "other", "tenant_scope"),
        (Role.INFRA_ADMIN, None, "infra_admin_required"),
        (Role.SYNC_AGENT, None, "infra_admin_required"),
    ]:
        with pytest.raises(Forbidden) as err:
            auth.add_user(boss, "nope", "long-enough-pw", role, tenant)
        assert err.value.code == code
    assert not User.select().where(User.username == "nope").exists()
    assert [u.username for u in auth.list_users(boss)] == ["boss", "dev", "eyes"]
    # Another tenant's user looks like no user at all.
    with pytest.raises(NotFound):
        auth.delete_user(boss, "stranger")
    with pytest.raises(Conflict) as gone:
        auth.delete_user(boss, "boss")
    assert gone.value.code == "cannot_remove_self"
    dev_token, _ = auth.login("dev", "long-enough-pw")
    auth.delete_user(boss, "dev")
    with pytest.raises(Unauthorized):
        auth.authenticate(dev_token)  # its tokens went with it


@pytest.mark.parametrize("role", [Role.TENANT_USER, Role.VIEWER])
def test_tenant_users_and_viewers_manage_no_users(auth: AuthService, role: Role) -> None:
    auth.create_tenant("acme", "")
    auth.create_user("someone", "long-enough-pw", role, "acme")
    who = _principal(auth, "someone")
    with pytest.raises(Forbidden) as err:
        auth.add_user(who, "x", "long-enough-pw", Role.TENANT_USER, "acme")
    assert err.value.code == "user_admin_required"
    with pytest.raises(Forbidden):
        auth.list_users(who)
    with pytest.raises(Forbidden):
        auth.delete_user(who, "someone")


def test_a_tenant_user_needs_a_tenant(auth: AuthService) -> None:
    with pytest.raises(InvalidInput) as err:
        auth.create_user("dev", "long-enough-pw", Role.TENANT_USER, None)
    assert err.value.code == "tenant_required"
