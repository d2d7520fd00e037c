"""The boundary between the node and its tenants, at VM create: each privileged field
is refused to a tenant-admin without the grant (or always, for what only an
infra-admin names), with a code that says what is missing, and leaves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.context import Appliance
from tests.support.tenancy import clients, footprint, tenant_node

SIM_GPU = "0000:17:00.0"  # the simulated H100's PCI address


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from tenant_node(tmp_path)


@pytest.fixture
def api(appliance: Appliance) -> Iterator[tuple[TestClient[Any], dict[str, str], dict[str, str]]]:
    yield from clients(appliance)


def _create(c: TestClient[Any], headers: dict[str, str], body: dict[str, Any]) -> Any:
    body = {"name": "probe", "appliance": "demo", **body}
    return c.post("/api/v1/vms", headers=headers, json=body)


def _grant(c: TestClient[Any], admin: dict[str, str], grants: dict[str, Any]) -> None:
    resp = c.put("/api/v1/tenants/acme/grants", headers=admin, json=grants)
    assert resp.status_code == 200, resp.text


B2B = {"role": "b2b"}


@pytest.mark.parametrize(
    ("body", "grants", "code", "member"),
    [
        pytest.param(
            {"spec": {**B2B, "nics": [{"kind": "bridge", "bridge": "br-n3"}]}},
            {},
            "infra_admin_required",
            {"field": "nics[0].bridge"},
            id="raw-bridge-nic",
        ),
        pytest.param(
            {"spec": {**B2B, "nics": [{"kind": "ovs", "bridge": "br-n6", "vlan": 200}]}},
            {},
            "infra_admin_required",
            {"field": "nics[0].bridge"},
            id="raw-ovs-port-and-vlan",
        ),
        pytest.param(
            {"spec": {"role": "vran"}}, {}, "role_not_allowed", {"field": "role"}, id="role-vran"
        ),
        pytest.param(
            {"spec": {"role": "upf"}}, {}, "role_not_allowed", {"field": "role"}, id="role-upf"
        ),
        pytest.param(
            {"spec": {**B2B, "pci_devices": [SIM_GPU]}},
            {"pci_devices": ["0000:01:00.0"]},
            "infra_admin_required",
            {"field": "pci_devices[0]"},
            id="gpu-of-the-gpu-service-by-pci",
        ),
        pytest.param(
            {"spec": {**B2B, "gpu": {"role": "vran", "profile": "3g.40gb"}}},
            {},
            "infra_admin_required",
            {"field": "gpu.role"},
            id="vran-slice",
        ),
        pytest.param(
            {"spec": {**B2B, "cpu": {"policy": "pinned"}}},
            {},
            "grant_required",
            {"grant": "pinned_cores", "field": "cpu.policy"},
            id="pinned-cores",
        ),
        pytest.param(
            {"spec": {**B2B, "cpu": {"policy": "pinned", "isolated": True}}},
            {"pinned_cores": 4},
            "grant_required",
            {"grant": "isolated_cores", "field": "cpu.isolated"},
            id="isolated-cores",
        ),
        pytest.param(
            {"spec": {**B2B, "memory_mib": 1024, "hugepages": "2M"}},
            {"hugepages": {"1G": 4096}},
            "grant_required",
            {"grant": "hugepages", "field": "hugepages"},
            id="hugepages-of-another-size",
        ),
        pytest.param(
            {"spec": {**B2B, "numa_node": 0}},
            {},
            "grant_required",
            {"grant": "numa_node_choice", "field": "numa_node"},
            id="numa-node",
        ),
        pytest.param(
            {"spec": {**B2B, "nics": [{"kind": "sriov", "pf": "ens1f0"}]}},
            {"sriov_pfs": {"ens3f0np0": 1}},
            "grant_required",
            {"grant": "sriov_pfs", "field": "nics[0].pf"},
            id="sriov-vf-of-another-pf",
        ),
        pytest.param(
            {"spec": {**B2B, "pci_devices": ["0000:01:00.0"]}},
            {},
            "grant_required",
            {"grant": "pci_devices", "field": "pci_devices[0]"},
            id="pci-passthrough",
        ),
        pytest.param(
            {"appliance": "vran-du", "spec": {"role": "b2b"}},
            {},
            "grant_required",
            {"grant": "sriov_pfs"},
            id="vran-du-entry-as-b2b",
        ),
        pytest.param(
            {"appliance": "vran-du", "spec": {"role": "b2b", "nics": []}},
            {},
            "grant_required",
            {"grant": "pinned_cores"},
            id="vran-du-entry-as-b2b-without-its-vf",
        ),
        pytest.param(
            {"appliance": "upf", "spec": {"role": "b2b"}},
            {},
            "infra_admin_required",
            {"field": "nics[0].bridge"},
            id="upf-entry-as-b2b",
        ),
    ],
)
def test_a_tenant_admin_is_refused_and_nothing_is_left(
    appliance: Appliance,
    api: tuple[TestClient[Any], dict[str, str], dict[str, str]],
    body: dict[str, Any],
    grants: dict[str, Any],
    code: str,
    member: dict[str, str],
) -> None:
    c, admin, acme = api
    if grants:
        _grant(c, admin, grants)
    before = footprint(appliance)
    resp = _create(c, acme, body)
    assert (resp.status_code, resp.json()["code"]) == (403, code), resp.text
    problem = resp.json()
    assert {k: problem.get(k) for k in member} == member
    assert problem["detail"]
    assert footprint(appliance) == before


def test_the_same_fields_pass_with_the_grants(
    appliance: Appliance, api: tuple[TestClient[Any], dict[str, str], dict[str, str]]
) -> None:
    c, admin, acme = api
    _grant(
        c,
        admin,
        {
            "pinned_cores": 4,
            "isolated_cores": True,
            "hugepages": {"2M": 2048},
            "numa_node_choice": True,
            "sriov_pfs": {"ens1f0": 1},
            "pci_devices": ["0000:01:00.0"],
        },
    )
    spec = {
        **B2B,
        "vcpus": 2,
        "memory_mib": 1024,
        "cpu": {"policy": "pinned", "isolated": True},
        "hugepages": "2M",
        "numa_node": 0,
        "nics": [{"kind": "sriov", "pf": "ens1f0"}, {"kind": "vnet", "vnet": "llm"}],
        "pci_devices": ["0000:01:00.0"],
    }
    made = _create(c, acme, {"spec": spec})
    assert made.status_code == 201, made.text
    alloc = made.json()["allocation"]
    assert alloc["sriov_vfs"] and alloc["pci_devices"] == ["0000:01:00.0"]
    # The grant's counts are quotas: a second VF of ens1f0 is past the one granted.
    again = _create(c, acme, {"name": "probe2", "spec": {**B2B, "nics": spec["nics"][:1]}})
    assert (again.status_code, again.json()["code"]) == (409, "quota_exceeded"), again.text
    assert again.json()["quota"] == "grants.sriov_pfs.ens1f0"


def test_another_tenants_vnet_is_refused_like_one_that_does_not_exist(
    appliance: Appliance, api: tuple[TestClient[Any], dict[str, str], dict[str, str]]
) -> None:
    c, _, acme = api
    before = footprint(appliance)
    answers = []
    for ref in ("beta/cams", "beta/nothing"):
        resp = _create(c, acme, {"spec": {**B2B, "nics": [{"kind": "vnet", "vnet": ref}]}})
        problem = resp.json()
        detail = problem["detail"].replace(ref, "?")
        answers.append((resp.status_code, problem["code"], problem["field"], detail))
    assert answers[0] == answers[1]
    assert answers[0][:2] == (404, "vnet_not_found")
    assert footprint(appliance) == before


def test_the_vran_slice_is_for_vran_vms_even_for_an_infra_admin(
    appliance: Appliance, api: tuple[TestClient[Any], dict[str, str], dict[str, str]]
) -> None:
    c, admin, _ = api
    before = footprint(appliance)
    resp = _create(c, admin, {"spec": {**B2B, "gpu": {"role": "vran", "profile": "3g.40gb"}}})
    assert (resp.status_code, resp.json()["code"]) == (403, "vran_slice_protected"), resp.text
    assert footprint(appliance) == before


def test_an_infra_admin_may_name_raw_nics_and_the_gpu_by_pci(
    appliance: Appliance, api: tuple[TestClient[Any], dict[str, str], dict[str, str]]
) -> None:
    c, admin, _ = api
    spec = {"nics": [{"kind": "ovs", "bridge": "br-n6", "vlan": 200}], "tenant": "acme"}
    made = _create(c, admin, {"spec": spec})
    assert made.status_code == 201, made.text
    assert made.json()["tenant"] == "acme"
