"""The shared tenant rules: what the registry and the node both check in a tenants
document, with the field named by its place in the document."""

from __future__ import annotations

from typing import Any

import pytest

from towerbox_core.api.tenants import UNLIMITED
from towerbox_core.errors import InvalidInput
from towerbox_core.names import parse_label
from towerbox_core.tenant_rules import parse_tenants_document


def test_a_good_document_parses_into_the_api_structs() -> None:
    doc = parse_tenants_document(
        {
            "tenants": {
                "acme": {
                    "description": "ACME",
                    "labels": {"tier": "gold"},
                    "quotas": {"vms": UNLIMITED, "gpu_slices": {"1g.10gb": 2}},
                    "grants": {"pci_devices": ["0000:01:00.0"]},
                    "vnets": [{"name": "llm", "tenant": "acme"}],
                },
                "beta": {},
            }
        }
    )
    acme, beta = doc.tenants["acme"], doc.tenants["beta"]
    assert acme.quotas is not None and acme.quotas.vms == UNLIMITED
    assert acme.grants.pci_devices == ["0000:01:00.0"]
    assert (beta.quotas, beta.labels, beta.vnets) == (None, {}, [])


@pytest.mark.parametrize(
    ("tenant", "code", "field"),
    [
        ({"quotas": {"memory_mib": -2}}, "invalid_quota", "tenants.acme.quotas.memory_mib"),
        ({"quotas": {"whole_gpus": 10**9}}, "invalid_quota", "tenants.acme.quotas.whole_gpus"),
        (
            {"quotas": {"gpu_slices": {"1g.10gb": -1 - 1}}},
            "invalid_quota",
            "tenants.acme.quotas.gpu_slices.1g.10gb",
        ),
        ({"grants": {"sriov_pfs": {"ens1f0": 2**40}}}, "invalid_grant", None),
        ({"grants": {"hugepages": {"3M": 1}}}, "invalid_grant", "tenants.acme.grants.hugepages.3M"),
        ({"quotas": {"vms": "many"}}, "invalid_desired_document", None),
        ({"quota": {}}, "invalid_desired_document", None),
        ({"labels": {"-x": "y"}}, "invalid_name", "tenants.acme.labels"),
        ({"vnets": [{"tenant": "other"}]}, "vnet_tenant_mismatch", "tenants.acme.vnets[0].tenant"),
    ],
)
def test_bad_tenants_are_refused_with_a_code_and_the_field(
    tenant: dict[str, Any], code: str, field: str | None
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_tenants_document({"tenants": {"acme": tenant}})
    assert caught.value.code == code
    assert field is None or caught.value.extra["field"] == field


def test_the_document_itself_must_have_its_shape() -> None:
    for bad in ({"tenant": {}}, {"tenants": []}, {"tenants": {"a b": {}}}):
        with pytest.raises(InvalidInput):
            parse_tenants_document(bad)


def test_labels_on_the_command_line() -> None:
    assert parse_label("tier=gold") == ("tier", "gold")
    with pytest.raises(InvalidInput, match="key=value"):
        parse_label("tier")
