"""The registry as an artifact origin: operators upload content-addressed blobs,
enrolled agents read them by hash with HTTP Range; who may do what."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from registry.services.blobs import RangeNotSatisfiable, byte_range
from registry.store.models import BlobRow
from tests.registry.fleetapi import Api

DATA = os.urandom(3 * 1024 * 1024 + 17)
SHA = hashlib.sha256(DATA).hexdigest()


def _viewer(api: Api) -> dict[str, str]:
    made = api.client.post(
        "/api/v1/operators",
        json={"username": "eve", "password": "correct horse battery", "role": "viewer"},
        headers=api.admin,
    )
    assert made.status_code == 201, made.text
    login = api.client.post(
        "/api/v1/auth/login", json={"username": "eve", "password": "correct horse battery"}
    )
    return {"Authorization": f"Bearer {login.json()['token']}"}


def test_an_admin_uploads_once_and_an_agent_reads_it_whole_or_in_ranges(api: Api) -> None:
    client = api.client
    made = client.put(f"/api/v1/blobs/{SHA}?name=model.bin", content=DATA, headers=api.admin)
    assert made.status_code == 201, made.text
    assert made.json()["size"] == len(DATA) and made.json()["name"] == "model.bin"
    assert made.json()["uploaded_by"] == "admin"
    assert (api.registry.blobs.root / SHA).read_bytes() == DATA
    # Idempotent: the same bytes again change nothing.
    again = client.put(f"/api/v1/blobs/{SHA}", content=DATA, headers=api.admin)
    assert again.status_code == 200 and again.json()["name"] == "model.bin"
    listed = client.get("/api/v1/blobs", headers=api.admin).json()
    assert [b["sha256"] for b in listed["blobs"]] == [SHA] and listed["total_bytes"] == len(DATA)
    assert client.get(f"/api/v1/blobs/{SHA}", headers=api.admin).json()["size"] == len(DATA)

    site = api.enroll("s1")
    whole = client.get(f"/api/v1/sync/blobs/{SHA}", headers=site)
    assert whole.status_code == 200 and whole.content == DATA
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-length"] == str(len(DATA))
    half = len(DATA) // 2
    rest = client.get(f"/api/v1/sync/blobs/{SHA}", headers={**site, "Range": f"bytes={half}-"})
    assert rest.status_code == 206 and rest.content == DATA[half:]
    assert rest.headers["content-range"] == f"bytes {half}-{len(DATA) - 1}/{len(DATA)}"
    some = client.get(f"/api/v1/sync/blobs/{SHA}", headers={**site, "Range": "bytes=10-19"})
    assert (some.status_code, some.content) == (206, DATA[10:20])
    tail = client.get(f"/api/v1/sync/blobs/{SHA}", headers={**site, "Range": "bytes=-5"})
    assert (tail.status_code, tail.content) == (206, DATA[-5:])
    for bad in (f"bytes={len(DATA)}-", "bytes=9-3", "bytes=x-"):
        refused = client.get(f"/api/v1/sync/blobs/{SHA}", headers={**site, "Range": bad})
        assert refused.status_code == 416, bad
        assert refused.headers["content-range"] == f"bytes */{len(DATA)}"
    missing = client.get(f"/api/v1/sync/blobs/{'0' * 64}", headers=site)
    assert (missing.status_code, missing.json()["code"]) == (404, "blob_not_found")

    assert client.delete(f"/api/v1/blobs/{SHA}", headers=api.admin).status_code == 204
    gone = client.get(f"/api/v1/sync/blobs/{SHA}", headers=site)
    assert (gone.status_code, gone.json()["code"]) == (404, "blob_not_found")
    assert not (api.registry.blobs.root / SHA).exists()
    again_gone = client.delete(f"/api/v1/blobs/{SHA}", headers=api.admin)
    assert (again_gone.status_code, again_gone.json()["code"]) == (404, "blob_not_found")


def test_a_wrong_or_malformed_hash_is_refused_and_leaves_nothing(sqlite_api: Api) -> None:
    client = sqlite_api.client
    wrong = "0" * 64
    resp = client.put(f"/api/v1/blobs/{wrong}", content=DATA, headers=sqlite_api.admin)
    assert (resp.status_code, resp.json()["code"]) == (422, "blob_hash_mismatch")
    assert resp.json()["expected"] == wrong and resp.json()["got"] == SHA
    bad = client.put("/api/v1/blobs/not-a-hash", content=b"x", headers=sqlite_api.admin)
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_sha256")
    name = client.put(f"/api/v1/blobs/{SHA}?name=a%0Ab", content=DATA, headers=sqlite_api.admin)
    assert (name.status_code, name.json()["code"]) == (422, "invalid_name")
    blobs = sqlite_api.registry.blobs
    assert BlobRow.select().count() == 0
    assert not (blobs.root / wrong).exists()
    assert list(blobs.tmp_dir.iterdir()) == []


def test_a_blob_over_the_limit_is_refused(sqlite_api: Api) -> None:
    blobs = sqlite_api.registry.blobs
    blobs.max_bytes = 1024
    resp = sqlite_api.client.put(f"/api/v1/blobs/{SHA}", content=DATA, headers=sqlite_api.admin)
    assert (resp.status_code, resp.json()["code"]) == (413, "blob_too_large")
    assert BlobRow.select().count() == 0


def test_only_admins_write_blobs_and_only_sites_read_their_bytes(sqlite_api: Api) -> None:
    client = sqlite_api.client
    viewer = _viewer(sqlite_api)
    site = sqlite_api.enroll("s1")
    put = f"/api/v1/blobs/{SHA}"
    assert client.put(put, content=DATA, headers=viewer).json()["code"] == "admin_required"
    assert client.put(put, content=DATA, headers=viewer).status_code == 403
    refused = client.put(put, content=DATA, headers=site)
    assert (refused.status_code, refused.json()["code"]) == (401, "operator_token_required")
    assert client.put(put, content=DATA).status_code == 401
    assert BlobRow.select().count() == 0
    assert client.put(put, content=DATA, headers=sqlite_api.admin).status_code == 201
    # Viewers list; they do not remove.
    assert client.get("/api/v1/blobs", headers=viewer).status_code == 200
    gone = client.delete(put, headers=viewer)
    assert (gone.status_code, gone.json()["code"]) == (403, "admin_required")
    assert client.delete(put, headers=site).json()["code"] == "operator_token_required"
    # The bytes go to enrolled agents only: an operator token is not a site secret.
    sync = f"/api/v1/sync/blobs/{SHA}"
    assert client.get(sync, headers=sqlite_api.admin).json()["code"] == "invalid_site_secret"
    assert client.get(sync, headers={"Authorization": "Bearer tbs_nope"}).status_code == 401
    assert client.get(sync).status_code == 401
    assert client.get(sync, headers=site).status_code == 200


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-", (0, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("items=0-5", None),
        ("bytes=0-1,5-6", None),
    ],
)
def test_byte_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-4", "bytes=-0", "bytes=-", "bytes=a-b"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 100)


def test_abandoned_uploads_are_swept_and_fresh_ones_kept(sqlite_api: Api) -> None:
    blobs = sqlite_api.registry.blobs
    old = blobs.begin(SHA)
    fresh = blobs.begin(SHA)
    os.utime(old.path, (time.time() - 2 * 86400,) * 2)
    assert blobs.sweep_tmp() == 1
    assert not old.path.exists() and fresh.path.exists()
    fresh.discard()
    old.discard()  # idempotent on a file already gone
    assert list(blobs.tmp_dir.iterdir()) == []
