"""``towerbox tenant set-quota|grant|revoke|show``: the words become the API's bodies,
and the node takes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.cli.tenant import create_body, grant_body, quota_body, usage_rows
from tests.support.tenancy import clients, tenant_node
from towerbox_core.errors import InvalidInput


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient[Any], dict[str, str], dict[str, str]]]:
    for app in tenant_node(tmp_path):
        yield from clients(app)


def test_words_become_bodies() -> None:
    assert quota_body(["vms=3", "memory_mib=unlimited", "gpu_slices.1g.10gb=2"]) == {
        "vms": 3,
        "memory_mib": -1,
        "gpu_slices": {"1g.10gb": 2},
    }
    granted = grant_body(
        ["pinned_cores=8", "isolated_cores", "sriov_pfs.ens1f0=2", "pci_devices=0000:01:00.0"],
        ["0000:b1:00.0"],
        revoke=False,
    )
    assert granted == {
        "pinned_cores": 8,
        "isolated_cores": True,
        "sriov_pfs": {"ens1f0": 2},
        "pci_devices": ["0000:b1:00.0", "0000:01:00.0"],
    }
    revoked = grant_body(
        ["isolated_cores", "hugepages.1G", "pci_devices=0000:b1:00.0"],
        ["0000:b1:00.0"],
        revoke=True,
    )
    assert revoked == {"isolated_cores": False, "hugepages": {"1G": 0}, "pci_devices": []}
    for bad in (["vms"], ["vms=lots"], ["gpu_slices=2"]):
        with pytest.raises(InvalidInput):
            quota_body(bad)


def test_the_node_takes_the_bodies_and_show_lists_every_limit(
    api: tuple[TestClient[Any], dict[str, str], dict[str, str]],
) -> None:
    c, admin, acme = api
    body = quota_body(["vms=3", "gpu_slices.1g.10gb=2"])
    assert c.put("/api/v1/tenants/acme/quotas", headers=admin, json=body).status_code == 200
    body = grant_body(
        ["pinned_cores=4", "sriov_pfs.ens1f0=1", "numa_node_choice"], [], revoke=False
    )
    assert c.put("/api/v1/tenants/acme/grants", headers=admin, json=body).status_code == 200
    body = grant_body(["sriov_pfs.ens1f0"], [], revoke=True)
    answer = c.put("/api/v1/tenants/acme/grants", headers=admin, json=body).json()
    assert answer["grants"]["sriov_pfs"] == {} and answer["grants"]["pinned_cores"] == 4
    rows = {
        r["limit"]: (r["used"], r["max"])
        for r in usage_rows(c.get("/api/v1/tenants/acme", headers=acme).json())
    }
    assert rows["vms"] == (0, "3")
    assert rows["gpu_slices.1g.10gb"] == (0, "2")
    assert rows["grants.pinned_cores"] == (0, "4")
    assert rows["vnets"] == (1, "4")


def test_a_tenant_made_with_labels_shows_them(
    api: tuple[TestClient[Any], dict[str, str], dict[str, str]],
) -> None:
    c, admin, _ = api
    body = create_body("gamma", "Gamma", ["tier=gold", "region=eu"])
    assert body["labels"] == {"tier": "gold", "region": "eu"}
    made = c.post("/api/v1/tenants", headers=admin, json=body)
    assert made.status_code == 201 and made.json()["labels"] == body["labels"]
    assert c.get("/api/v1/tenants/gamma", headers=admin).json()["labels"] == {
        "region": "eu",
        "tier": "gold",
    }
    bad = c.post("/api/v1/tenants", headers=admin, json={"name": "delta", "labels": {"a": "b c"}})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_name")
    assert c.get("/api/v1/tenants/delta", headers=admin).status_code == 404
    with pytest.raises(InvalidInput):
        create_body("gamma", "", ["tier"])
