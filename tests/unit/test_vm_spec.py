from __future__ import annotations

from typing import Any

import pytest

from appliance.domain.vm_spec import CpuPolicy, HugepageSize, NicKind, parse_vm_spec
from towerbox_core.errors import InvalidInput

BOOT = {"boot": {"kernel": "vmlinuz"}}


def test_defaults_and_nested_parts() -> None:
    spec = parse_vm_spec(
        {
            "name": "du-1",
            "vcpus": 4,
            "memory_mib": 2048,
            "cpu": {"policy": "pinned", "pin_unit": "thread", "isolated": True},
            "hugepages": "1G",
            "disks": [{"image": "du.qcow2"}],
            "nics": [
                {"kind": "ovs", "bridge": "br-n6", "vlan": 100},
                {"kind": "sriov", "pf": "ens1f0"},
            ],
            "pci_devices": ["0000:ca:00.0"],
        }
    )
    assert spec.cpu.policy is CpuPolicy.PINNED
    assert spec.hugepages is HugepageSize.SIZE_1G
    assert spec.nics[1].kind is NicKind.SRIOV
    assert spec.restart.value == "on-failure"


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        ({"name": "bad name", **BOOT}, "invalid_name", "name"),
        ({"name": "-lead", **BOOT}, "invalid_name", "name"),
        ({"name": "", **BOOT}, "invalid_name", "name"),
        ({"name": "ab\n", **BOOT}, "invalid_name", "name"),
        ({"name": "ok", "vcpus": 0, **BOOT}, "invalid_vcpus", "vcpus"),
        ({"name": "ok", "vcpus": 1000, **BOOT}, "invalid_vcpus", "vcpus"),
        ({"name": "ok", "memory_mib": 8, **BOOT}, "invalid_memory", "memory_mib"),
        (
            {"name": "ok", "memory_mib": 1500, "hugepages": "1G", **BOOT},
            "invalid_memory",
            "memory_mib",
        ),
        ({"name": "ok", "cpu": {"isolated": True}, **BOOT}, "invalid_cpu_policy", "cpu"),
        ({"name": "ok"}, "invalid_spec", "disks"),
        ({"name": "ok", "disks": [{}]}, "invalid_spec", "disks[0]"),
        (
            {"name": "ok", "disks": [{"image": "../etc/shadow"}]},
            "invalid_image_name",
            "disks[0].image",
        ),
        (
            {"name": "ok", "disks": [{"image": "a.qcow2", "bus": "ide"}]},
            "invalid_spec",
            "disks[0].bus",
        ),
        (
            {"name": "ok", "boot": {"kernel": "k", "cmdline": "a\nb"}},
            "invalid_spec",
            "boot.cmdline",
        ),
        ({"name": "ok", "nics": [{"kind": "bridge"}], **BOOT}, "invalid_nic", "nics[0]"),
        (
            {"name": "ok", "nics": [{"kind": "bridge", "bridge": "br0;rm"}], **BOOT},
            "invalid_interface_name",
            "nics[0].bridge",
        ),
        (
            {"name": "ok", "nics": [{"kind": "bridge", "bridge": "a-very-long-bridge"}], **BOOT},
            "invalid_interface_name",
            "nics[0].bridge",
        ),
        (
            {"name": "ok", "nics": [{"kind": "bridge", "bridge": "br0", "vlan": 5}], **BOOT},
            "invalid_nic",
            "nics[0].vlan",
        ),
        ({"name": "ok", "nics": [{"kind": "sriov"}], **BOOT}, "invalid_nic", "nics[0]"),
        (
            {"name": "ok", "nics": [{"kind": "ovs", "bridge": "b", "mac": "zz"}], **BOOT},
            "invalid_nic",
            "nics[0].mac",
        ),
        (
            {"name": "ok", "pci_devices": ["0000:ca:00.0", "0000:ca:00.0"], **BOOT},
            "invalid_pci_address",
            "pci_devices[1]",
        ),
        ({"name": "ok", "tenant": "a b", **BOOT}, "invalid_name", "tenant"),
    ],
)
def test_refusals_name_the_field(data: dict[str, Any], code: str, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_vm_spec(data)
    assert err.value.code == code
    assert err.value.extra.get("field") == field
    assert err.value.message


@pytest.mark.parametrize(
    "data",
    [
        {"name": "ok", "vcpus": "2", **BOOT},
        {"name": "ok", "unknown": 1, **BOOT},
        {"name": "ok", "nics": [{"kind": "ovs", "bridge": "b", "vlan": 4095}], **BOOT},
        {"name": "ok", "nics": [{"kind": "ovs", "bridge": "b", "vlan": 0}], **BOOT},
        {"name": "ok", "hugepages": "4M", **BOOT},
        {"name": "ok", "cpu": {"policy": "dedicated"}, **BOOT},
    ],
)
def test_shape_errors_say_where(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_vm_spec(data)
    assert err.value.code == "invalid_spec"
    # msgspec names the path ($.vcpus), or the field itself when it is unknown.
    assert "$." in err.value.message or "unknown field `unknown`" in err.value.message
