"""Operators and sites authenticate; tokens work once and not after their expiry;
a site reaches only its own records."""

from __future__ import annotations

import stat

from registry.store.models import EnrollmentToken, OperatorToken, Site
from tests.registry.fleetapi import Api, vm_entries


def test_admin_password_file_is_private(sqlite_api: Api) -> None:
    cfg = sqlite_api.registry.cfg
    for path in (cfg.admin_password_file, cfg.cli_token_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Stored as hashes only.
    token = sqlite_api.admin["Authorization"].removeprefix("Bearer ")
    assert not OperatorToken.select().where(OperatorToken.token_hash == token).exists()


def test_every_route_but_health_login_and_enroll_needs_a_token(sqlite_api: Api) -> None:
    client = sqlite_api.client
    assert client.get("/healthz").status_code == 200
    for method, path in [
        ("GET", "/api/v1/sites"),
        ("GET", "/api/v1/fleet/vms"),
        ("GET", "/api/v1/conflicts"),
        ("GET", "/api/v1/sync/journal/head"),
        ("POST", "/api/v1/sync/heartbeat"),
        ("GET", "/api/v1/blobs"),
        ("GET", f"/api/v1/blobs/{'a' * 64}"),
        ("PUT", f"/api/v1/blobs/{'a' * 64}"),
        ("DELETE", f"/api/v1/blobs/{'a' * 64}"),
        ("GET", f"/api/v1/sync/blobs/{'a' * 64}"),
        ("GET", "/api/schema/openapi.json"),
    ]:
        resp = client.request(method, path)
        assert resp.status_code == 401, path
        assert resp.json()["code"] == "unauthorized"
    bad = client.get("/api/v1/sites", headers={"Authorization": "Bearer tbr_nope"})
    assert bad.json()["code"] == "invalid_token"
    wrong = client.post("/api/v1/auth/login", json={"username": "admin", "password": "x" * 12})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "bad_credentials")
    # A password no one has is refused before it is hashed.
    huge = client.post("/api/v1/auth/login", json={"username": "admin", "password": "x" * 5000})
    assert (huge.status_code, huge.json()["code"]) == (400, "invalid_request")
    assert "password" in huge.json()["detail"]


def test_enrollment_token_works_once(sqlite_api: Api) -> None:
    token = sqlite_api.create_site("s1")["enrollment_token"]
    first = sqlite_api.client.post("/api/v1/enroll", json={"token": token, "hostname": "n1"})
    assert first.status_code == 200
    assert first.json()["site"] == "s1"
    assert first.json()["secret"].startswith("tbs_")
    again = sqlite_api.client.post("/api/v1/enroll", json={"token": token, "hostname": "n2"})
    assert (again.status_code, again.json()["code"]) == (401, "enrollment_token_used")
    unknown = sqlite_api.client.post("/api/v1/enroll", json={"token": "tbe_x", "hostname": "n"})
    assert unknown.json()["code"] == "enrollment_token_invalid"
    assert Site.get(Site.name == "s1").hostname == "n1"


def test_expired_enrollment_token_is_refused(sqlite_api: Api) -> None:
    token = sqlite_api.create_site("s1", token_ttl_s=60)["enrollment_token"]
    EnrollmentToken.update(expires_at=EnrollmentToken.expires_at - 61_000).execute()
    resp = sqlite_api.client.post("/api/v1/enroll", json={"token": token})
    assert (resp.status_code, resp.json()["code"]) == (401, "enrollment_token_expired")
    assert Site.get(Site.name == "s1").secret_hash is None
    fresh = sqlite_api.client.post(
        "/api/v1/sites/s1/enrollment-tokens", json={"ttl_s": 60}, headers=sqlite_api.admin
    )
    assert fresh.status_code == 201
    ok = sqlite_api.client.post("/api/v1/enroll", json={"token": fresh.json()["token"]})
    assert ok.status_code == 200


def test_reenrolling_replaces_the_secret(sqlite_api: Api) -> None:
    old = sqlite_api.enroll("s1")
    token = sqlite_api.client.post(
        "/api/v1/sites/s1/enrollment-tokens", headers=sqlite_api.admin
    ).json()["token"]
    secret = sqlite_api.client.post("/api/v1/enroll", json={"token": token}).json()["secret"]
    assert sqlite_api.client.get("/api/v1/sync/journal/head", headers=old).status_code == 401
    new = {"Authorization": f"Bearer {secret}"}
    assert sqlite_api.client.get("/api/v1/sync/journal/head", headers=new).status_code == 200


def test_a_site_reaches_only_its_own_records(sqlite_api: Api) -> None:
    a = sqlite_api.enroll("a", labels={"tier": "gold"})
    b = sqlite_api.enroll("b")
    sqlite_api.post_batch(a, vm_entries(1, 10))
    # b's secret writes b's journal, whatever the body says; a's stays untouched.
    assert sqlite_api.post_batch(b, vm_entries(1, 3)).json() == {"acked_seq": 3, "stored": 3}
    assert Site.get(Site.name == "a").acked_seq == 10
    # A site secret opens no operator route, so no other site's data.
    for path in ("/api/v1/sites/a/journal", "/api/v1/sites", "/api/v1/fleet/vms"):
        resp = sqlite_api.client.get(path, headers=b)
        assert (resp.status_code, resp.json()["code"]) == (401, "operator_token_required")
    # An operator token is not a site secret.
    resp = sqlite_api.client.get("/api/v1/sync/journal/head", headers=sqlite_api.admin)
    assert (resp.status_code, resp.json()["code"]) == (401, "invalid_site_secret")
    # Desired documents of a's group do not reach b.
    sqlite_api.client.put(
        "/api/v1/groups/tier=gold/desired/gpu", json={"x": 1}, headers=sqlite_api.admin
    )
    assert sqlite_api.client.get("/api/v1/sync/desired/gpu", headers=a).status_code == 200
    assert sqlite_api.client.get("/api/v1/sync/desired/gpu", headers=b).status_code == 404


def test_viewers_read_but_do_not_write(sqlite_api: Api) -> None:
    client = sqlite_api.client
    viewer = sqlite_api.viewer("eve")
    assert client.get("/api/v1/sites", headers=viewer).status_code == 200
    resp = client.post("/api/v1/sites", json={"name": "x"}, headers=viewer)
    assert (resp.status_code, resp.json()["code"]) == (403, "admin_required")
    assert client.post("/api/v1/auth/logout", headers=viewer).status_code == 204
    assert client.get("/api/v1/sites", headers=viewer).status_code == 401


def test_site_input_is_validated(sqlite_api: Api) -> None:
    client = sqlite_api.client
    for body, code in [
        ({"name": "bad name"}, "invalid_name"),
        ({"name": "ok", "labels": {"tier": "has space"}}, "invalid_name"),
        ({"name": "ok", "token_ttl_s": 0}, "invalid_ttl"),
        ({"name": "ok", "extra": 1}, "invalid_request"),
        ({"name": "ok", "token_ttl_s": "3600"}, "invalid_request"),  # a number, not a string
    ]:
        resp = client.post("/api/v1/sites", json=body, headers=sqlite_api.admin)
        assert resp.status_code in (400, 422), resp.text
        assert resp.json()["code"] == code
    assert Site.select().count() == 0
    sqlite_api.create_site("ok")
    dup = client.post("/api/v1/sites", json={"name": "ok"}, headers=sqlite_api.admin)
    assert (dup.status_code, dup.json()["code"]) == (409, "site_exists")


def test_numbers_past_what_the_database_stores_are_refused(sqlite_api: Api) -> None:
    # Each once reached SQLite and answered 500.
    huge = str(2**80)
    client, admin = sqlite_api.client, sqlite_api.admin
    assert client.delete(f"/api/v1/tokens/{huge}", headers=admin).status_code == 400
    resp = client.get(f"/api/v1/sites?offset={huge}", headers=admin)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "invalid_request"
