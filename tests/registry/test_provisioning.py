"""Zero-touch enrollment at the registry: provisioning credentials, hardware identities,
re-binding a site to a replacement node with a new journal epoch."""

from __future__ import annotations

from typing import Any

import pytest

from registry.store.models import (
    JournalArchiveRow,
    ProvisioningCredential,
    Site,
    SiteEpoch,
    SiteIdentity,
)
from tests.registry.fleetapi import Api, vm_entries

MACHINE_A = "4c4c4544004d3510804bb4c04f4e3232"
MACHINE_B = "0f7e2a90c2b34a9e8d1c5b6a7e8f9012"


def _credential(api: Api, **body: Any) -> dict[str, Any]:
    resp = api.client.post(
        "/api/v1/provisioning-credentials",
        json={"name": "rack-install", "labels": {"tier": "edge"}, **body},
        headers=api.admin,
    )
    assert resp.status_code == 201, resp.text
    result: dict[str, Any] = resp.json()
    return result


def _provision(api: Api, token: str, hardware_id: str, hostname: str = "node") -> Any:
    return api.client.post(
        "/api/v1/provision",
        json={"hardware_id": hardware_id, "hostname": hostname},
        headers={"Authorization": f"Bearer {token}"},
    )


def _counts() -> tuple[int, int, int]:
    return Site.select().count(), SiteIdentity.select().count(), SiteEpoch.select().count()


def test_a_credential_is_shown_once_and_kept_as_a_hash(api: Api) -> None:
    made = _credential(api, allow=[MACHINE_A, {"hardware_id": MACHINE_B, "site": "cell-9"}])
    assert made["token"].startswith("tbp_")
    assert made["allow"] == [
        {"hardware_id": MACHINE_A, "site": None},
        {"hardware_id": MACHINE_B, "site": "cell-9"},
    ]
    row = ProvisioningCredential.get_by_id(made["id"])
    assert made["token"] not in (row.token_hash, row.allow, row.labels)
    listed = api.client.get("/api/v1/provisioning-credentials", headers=api.admin).json()
    assert [c["name"] for c in listed["credentials"]] == ["rack-install"]
    assert "token" not in listed["credentials"][0]
    viewer = api.viewer("watcher")
    assert api.client.get("/api/v1/provisioning-credentials", headers=viewer).status_code == 200
    denied = api.client.post("/api/v1/provisioning-credentials", json={"name": "x"}, headers=viewer)
    assert (denied.status_code, denied.json()["code"]) == (403, "admin_required")
    anonymous = api.client.get("/api/v1/provisioning-credentials")
    assert anonymous.status_code == 401


def test_an_allowed_identity_creates_its_site_with_the_credentials_labels(api: Api) -> None:
    made = _credential(
        api, region="eu", allow=[MACHINE_A, {"hardware_id": MACHINE_B, "site": "cell-9"}]
    )
    first = _provision(api, made["token"], MACHINE_A, "node-a")
    assert first.status_code == 200, first.text
    reply = first.json()
    assert (reply["site"], reply["created"], reply["epoch"]) == (f"node-{MACHINE_A}", True, 1)
    named = _provision(api, made["token"], MACHINE_B).json()
    assert named["site"] == "cell-9"
    site = api.client.get("/api/v1/sites/cell-9", headers=api.admin).json()
    assert (site["labels"], site["region"], site["enrolled"]) == ({"tier": "edge"}, "eu", True)
    # The secret works on the sync routes: the site gets its groups' documents.
    beat = api.client.post(
        "/api/v1/sync/heartbeat",
        json={"agent_version": "1", "appliance_head": 0, "queued": 0, "host": {}},
        headers={"Authorization": f"Bearer {named['secret']}"},
    )
    assert beat.status_code == 200, beat.text
    identity = api.client.get("/api/v1/sites/cell-9/identity", headers=api.admin).json()
    assert [(i["hardware_id"], i["state"]) for i in identity] == [(MACHINE_B, "bound")]
    used = api.client.get("/api/v1/provisioning-credentials", headers=api.admin).json()
    assert used["credentials"][0]["uses"] == 2


def test_an_identity_listed_for_a_site_binds_that_site(api: Api) -> None:
    made = _credential(api)  # an empty allow-list: only listed identities
    api.create_site("cell-3", labels={"tier": "edge"})
    listed = api.client.put(
        "/api/v1/sites/cell-3/identity", json={"hardware_id": MACHINE_A}, headers=api.admin
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()["state"] == "listed"
    reply = _provision(api, made["token"], MACHINE_A).json()
    assert (reply["site"], reply["created"], reply["epoch"]) == ("cell-3", False, 1)
    # Listing a second identity on a site with a node needs the replacement flag.
    again = api.client.put(
        "/api/v1/sites/cell-3/identity", json={"hardware_id": MACHINE_B}, headers=api.admin
    )
    assert (again.status_code, again.json()["code"]) == (409, "site_bound")


@pytest.mark.parametrize(
    "case",
    ["not_allowed", "expired", "revoked", "unknown", "claimed_twice", "claimed_by_listing"],
)
def test_refused_provisioning_changes_nothing(api: Api, case: str) -> None:
    made = _credential(api, allow=[MACHINE_A])
    token = made["token"]
    expected: tuple[int, str]
    if case == "not_allowed":
        expected = (403, "identity_not_allowed")
        hardware_id = MACHINE_B
    elif case == "expired":
        ProvisioningCredential.update(expires_at=1).execute()
        expected, hardware_id = (401, "provisioning_credential_expired"), MACHINE_A
    elif case == "revoked":
        gone = api.client.delete(
            f"/api/v1/provisioning-credentials/{made['id']}", headers=api.admin
        )
        assert gone.status_code == 204
        expected, hardware_id = (401, "provisioning_credential_revoked"), MACHINE_A
    elif case == "unknown":
        token = "tbp_" + "x" * 43
        expected, hardware_id = (401, "provisioning_credential_invalid"), MACHINE_A
    elif case == "claimed_twice":
        assert _provision(api, token, MACHINE_A).status_code == 200
        expected, hardware_id = (409, "identity_claimed"), MACHINE_A
    else:
        api.create_site("cell-4")
        api.create_site("cell-5")
        put = api.client.put(
            "/api/v1/sites/cell-4/identity", json={"hardware_id": MACHINE_B}, headers=api.admin
        )
        assert put.status_code == 200
        other = api.client.put(
            "/api/v1/sites/cell-5/identity", json={"hardware_id": MACHINE_B}, headers=api.admin
        )
        assert (other.status_code, other.json()["code"]) == (409, "identity_claimed")
        assert _provision(api, token, MACHINE_B).status_code == 200
        expected, hardware_id = (409, "identity_claimed"), MACHINE_B
    before = _counts()
    secrets = [s.secret_hash for s in Site.select().order_by(Site.id)]
    resp = _provision(api, token, hardware_id)
    assert (resp.status_code, resp.json()["code"]) == expected, resp.text
    assert _counts() == before
    assert [s.secret_hash for s in Site.select().order_by(Site.id)] == secrets


@pytest.mark.parametrize(
    "hardware_id", ["", "x" * 129, "-leading-dash", "has space", "semi;colon", "ünïcode"]
)
def test_malformed_hardware_ids_are_refused_everywhere(api: Api, hardware_id: str) -> None:
    made = _credential(api, allow=[MACHINE_A])
    api.create_site("cell-6")
    before = _counts()
    resp = _provision(api, made["token"], hardware_id)
    assert (resp.status_code, resp.json()["code"]) == (422, "invalid_hardware_id")
    listed = api.client.put(
        "/api/v1/sites/cell-6/identity", json={"hardware_id": hardware_id}, headers=api.admin
    )
    assert (listed.status_code, listed.json()["code"]) == (422, "invalid_hardware_id")
    allow = api.client.post(
        "/api/v1/provisioning-credentials",
        json={"name": "bad", "allow": [hardware_id]},
        headers=api.admin,
    )
    assert (allow.status_code, allow.json()["code"]) == (422, "invalid_hardware_id")
    rebind = api.client.post(
        "/api/v1/sites/cell-6/rebind", json={"hardware_id": hardware_id}, headers=api.admin
    )
    assert (rebind.status_code, rebind.json()["code"]) == (422, "invalid_hardware_id")
    assert _counts() == before
    assert ProvisioningCredential.select().count() == 1


def test_bad_credential_requests_are_refused(api: Api) -> None:
    for body, code in (
        ({"name": "x", "allow": [MACHINE_A, MACHINE_A]}, "duplicate_identity"),
        ({"name": "x", "expires_in_s": 0}, "invalid_ttl"),
        ({"name": "x", "allow": [{"hardware_id": MACHINE_A, "site": "no spaces"}]}, "invalid_name"),
        ({"name": "bad name"}, "invalid_name"),
    ):
        resp = api.client.post("/api/v1/provisioning-credentials", json=body, headers=api.admin)
        assert (resp.status_code, resp.json()["code"]) == (422, code), body
    assert ProvisioningCredential.select().count() == 0
    gone = api.client.delete("/api/v1/provisioning-credentials/99", headers=api.admin)
    assert (gone.status_code, gone.json()["code"]) == (404, "credential_not_found")


def test_rebind_of_an_unknown_site_is_refused(api: Api) -> None:
    before = _counts()
    resp = api.client.post("/api/v1/sites/nowhere/rebind", json={}, headers=api.admin)
    assert (resp.status_code, resp.json()["code"]) == (404, "site_not_found")
    assert _counts() == before


def _held(api: Api, site: str, **params: Any) -> dict[str, Any]:
    resp = api.client.get(f"/api/v1/sites/{site}/journal", params=params, headers=api.admin)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def test_a_listed_replacement_starts_a_new_epoch_and_keeps_the_old_journal(api: Api) -> None:
    made = _credential(api)
    api.create_site("cell-7", labels={"tier": "edge"})
    api.client.put(
        "/api/v1/sites/cell-7/identity", json={"hardware_id": MACHINE_A}, headers=api.admin
    )
    old = {"Authorization": f"Bearer {_provision(api, made['token'], MACHINE_A).json()['secret']}"}
    assert api.post_batch(old, vm_entries(1, 30)).json()["acked_seq"] == 30
    replacement = api.client.put(
        "/api/v1/sites/cell-7/identity",
        json={"hardware_id": MACHINE_B, "replacement": True},
        headers=api.admin,
    )
    assert replacement.status_code == 200, replacement.text
    # Until the replacement proves its identity, the old node goes on syncing.
    assert api.post_batch(old, vm_entries(31, 5)).json()["acked_seq"] == 35
    reply = _provision(api, made["token"], MACHINE_B, "node-b").json()
    assert (reply["site"], reply["epoch"]) == ("cell-7", 2)
    new = {"Authorization": f"Bearer {reply['secret']}"}

    # The old node's secret stops working; the new node's seq 1 is accepted.
    refused = api.post_batch(old, vm_entries(36, 1))
    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_site_secret")
    head = api.client.get("/api/v1/sync/journal/head", headers=new).json()
    assert head == {"acked_seq": 0, "compacted_through": 0}
    ack = api.post_batch(new, vm_entries(1, 3, site_tag="b"))
    assert ack.status_code == 200, ack.text
    assert ack.json()["acked_seq"] == 3

    # Current objects come from the new epoch only; the old one's journal is kept.
    objects = api.client.get("/api/v1/sites/cell-7/objects", headers=api.admin).json()
    assert {o["object_id"] for o in objects["objects"]} == {"vm-b1", "vm-b2", "vm-b3"}
    current = _held(api, "cell-7")
    assert [e["seq"] for e in current["entries"]] == [1, 2, 3]
    archived = _held(api, "cell-7", epoch=1, limit=5000)
    assert [e["seq"] for e in archived["entries"]] == list(range(1, 36))
    assert archived["entries"][0]["object_id"] == "vm-1"
    assert archived["acked_seq"] == 35
    assert _held(api, "cell-7", epoch=2)["entries"] == current["entries"]
    missing = api.client.get("/api/v1/sites/cell-7/journal", params={"epoch": 9}, headers=api.admin)
    assert (missing.status_code, missing.json()["code"]) == (404, "epoch_not_found")
    detail = api.client.get("/api/v1/sites/cell-7", headers=api.admin).json()
    assert detail["epoch"] == 2
    assert [
        (e["epoch"], e["current"], e["hardware_id"], e["entries"], e["acked_seq"])
        for e in detail["epochs"]
    ] == [(1, False, MACHINE_A, 35, 35), (2, True, MACHINE_B, 3, 3)]
    # The old identity is free again; the new one is bound.
    identity = api.client.get("/api/v1/sites/cell-7/identity", headers=api.admin).json()
    assert [(i["hardware_id"], i["state"]) for i in identity] == [(MACHINE_B, "bound")]


def test_operator_rebind_archives_the_journal_and_answers_a_token(api: Api) -> None:
    old = api.enroll("cell-8", labels={"tier": "edge"})
    assert api.post_batch(old, vm_entries(1, 12)).json()["acked_seq"] == 12
    resp = api.client.post("/api/v1/sites/cell-8/rebind", json={}, headers=api.admin)
    assert resp.status_code == 200, resp.text
    rebound = resp.json()
    assert (rebound["epoch"], rebound["previous_epoch"], rebound["archived_entries"]) == (2, 1, 12)
    assert api.post_batch(old, vm_entries(13, 1)).status_code == 401
    assert JournalArchiveRow.select().count() == 12
    site = api.client.get("/api/v1/sites/cell-8", headers=api.admin).json()
    assert (site["enrolled"], site["acked_seq"], site["status"]) == (False, 0, "pending")
    enrolled = api.client.post(
        "/api/v1/enroll", json={"token": rebound["enrollment_token"], "hostname": "new"}
    )
    assert enrolled.status_code == 200, enrolled.text
    new = {"Authorization": f"Bearer {enrolled.json()['secret']}"}
    # The same seqs with other content: no journal_conflict, a new epoch.
    ack = api.post_batch(new, vm_entries(1, 12, site_tag="n"))
    assert ack.status_code == 200, ack.text
    assert ack.json() == {"acked_seq": 12, "stored": 12}
    # A second rebind keeps both ended epochs.
    api.client.post(
        "/api/v1/sites/cell-8/rebind", json={"hardware_id": MACHINE_A}, headers=api.admin
    )
    epochs = api.client.get("/api/v1/sites/cell-8/epochs", headers=api.admin).json()
    assert [(e["epoch"], e["entries"]) for e in epochs["epochs"]] == [(1, 12), (2, 12), (3, 0)]
    identity = api.client.get("/api/v1/sites/cell-8/identity", headers=api.admin).json()
    assert [(i["hardware_id"], i["state"]) for i in identity] == [(MACHINE_A, "listed")]
    made = _credential(api)
    assert _provision(api, made["token"], MACHINE_A).json()["epoch"] == 3
    # Deleting the site takes its epochs with it.
    assert api.client.delete("/api/v1/sites/cell-8", headers=api.admin).status_code == 204
    assert (JournalArchiveRow.select().count(), SiteEpoch.select().count()) == (0, 0)


def test_an_address_that_keeps_trying_is_throttled(api: Api) -> None:
    codes = [_provision(api, "tbp_guess", MACHINE_A).json()["code"] for _ in range(22)]
    assert codes[:20] == ["provisioning_credential_invalid"] * 20
    assert codes[20:] == ["too_many_attempts"] * 2


def test_a_rebind_refused_part_way_changes_nothing(api: Api) -> None:
    site = api.enroll("cell-10")
    assert api.post_batch(site, vm_entries(1, 4)).status_code == 200
    resp = api.client.post(
        "/api/v1/sites/cell-10/rebind", json={"token_ttl_s": 0}, headers=api.admin
    )
    assert (resp.status_code, resp.json()["code"]) == (422, "invalid_ttl")
    # The epoch was not started: the node still syncs, nothing was archived.
    assert api.post_batch(site, vm_entries(5, 1)).json()["acked_seq"] == 5
    assert (SiteEpoch.select().count(), JournalArchiveRow.select().count()) == (0, 0)
    # An id past the database's integer range is a bad request, not a database error;
    # an id in range that names nothing is a 404.
    huge = api.client.delete(f"/api/v1/provisioning-credentials/{2**70}", headers=api.admin)
    assert (huge.status_code, huge.json()["code"]) == (400, "invalid_request")
    gone = api.client.delete("/api/v1/provisioning-credentials/987654", headers=api.admin)
    assert (gone.status_code, gone.json()["code"]) == (404, "credential_not_found")


def test_two_nodes_proving_one_identity_at_once_bind_it_once(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from towerbox_core.errors import Conflict

    token = _credential(api)["token"]
    service = api.registry.provisioning
    for round_ in range(4):
        site = f"race-{round_}"
        api.create_site(site)
        hardware_id = f"race-machine-{round_}"
        service.set_identity(site, hardware_id, replacement=False)

        def claim(host: str, hardware_id: str = hardware_id) -> str:
            try:
                return service.provision(token, hardware_id, host).site
            except Conflict as err:
                return err.code
            finally:
                api.registry.db.close()  # this thread's connection

        with ThreadPoolExecutor(2) as pool:
            results = sorted(pool.map(claim, ["one", "two"]))
        assert results == ["identity_claimed", site], results
        assert SiteIdentity.get_by_id(hardware_id).state == "bound"


def test_sites_created_at_once_are_all_created(api: Api) -> None:
    """Site creation (shared with provisioning) takes the write lock by writing first:
    concurrent creations wait for each other instead of failing busy."""
    from concurrent.futures import ThreadPoolExecutor

    def create(i: int) -> str:
        try:
            return api.registry.sites.create(f"burst-{i}", "", {"tier": "edge"}, None).name
        finally:
            api.registry.db.close()

    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(create, range(48)))
    assert sorted(names) == sorted(f"burst-{i}" for i in range(48))


def test_a_replaced_nodes_usage_still_counts_for_its_site(sqlite_api: Api) -> None:
    from tests.registry.test_usage import PERIOD, _journal, _quantities

    api = sqlite_api
    old = api.enroll("cell-u")
    assert api.post_batch(old, _journal()).status_code == 200

    def usage() -> dict[tuple[str, str | None, str], float]:
        resp = api.client.get("/api/v1/usage", headers=api.admin, params=PERIOD)
        assert resp.status_code == 200, resp.text
        return _quantities(resp.json())

    before = usage()
    assert before  # the VM's hours, its disk, the GPU slice
    rebound = api.client.post("/api/v1/sites/cell-u/rebind", json={}, headers=api.admin).json()
    assert usage() == before  # the ended epoch is folded on its own, nothing lost
    enrolled = api.client.post(
        "/api/v1/enroll", json={"token": rebound["enrollment_token"], "hostname": "new"}
    ).json()
    new = {"Authorization": f"Bearer {enrolled['secret']}"}
    # The replacement runs the same workload over the same hours: twice the usage.
    assert api.post_batch(new, _journal()).status_code == 200
    assert usage() == {key: 2 * value for key, value in before.items()}
