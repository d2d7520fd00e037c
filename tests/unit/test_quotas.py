"""Quota math, privilege rules and host admission as pure functions; the [tenants]
defaults; and the schema 3 migration of a database made before it."""

from __future__ import annotations

from pathlib import Path

import msgspec
import peewee
import pytest

from appliance.config_load import load_config
from appliance.domain.admission import HostLimits, check_memory, memory_budget_mib
from appliance.domain.host import HostInventory, Hugepages, NumaNode
from appliance.domain.quotas import (
    charge_of,
    check_fits,
    over,
    update_grants,
    update_quotas,
    usage_of,
)
from appliance.domain.vm_privileges import check_privileges
from appliance.domain.vm_spec import parse_vm_spec
from appliance.store import db as store_db
from appliance.store.models import Vm, db_proxy
from towerbox_core.api.tenants import Grants, GrantsUpdate, Quotas, QuotasUpdate
from towerbox_core.errors import ConfigError, Forbidden, InsufficientResources, InvalidInput

BOOT = {"boot": {"kernel": "k"}}


def test_a_vm_charges_what_it_asks_for() -> None:
    spec = parse_vm_spec(
        {
            "name": "v",
            **BOOT,
            "vcpus": 4,
            "memory_mib": 2048,
            "hugepages": "2M",
            "gpu": {"profile": "3g.40gb"},
            "nics": [{"kind": "sriov", "pf": "ens1f0"}, {"kind": "sriov", "pf": "ens1f0"}],
        }
    )
    charge = charge_of(spec, disk_gib=20, pinned_cores=0)
    assert (charge.vcpus, charge.memory_mib, charge.disk_gib) == (4, 2048, 20)
    assert charge.gpu_slices == {"3g.40gb": 1} and charge.gpu_compute_slices == 3
    assert charge.hugepages == {"2M": 2048} and charge.sriov_pfs == {"ens1f0": 2}
    usage = usage_of([charge, charge], vnets=1)
    assert (usage.vms, usage.vcpus, usage.gpu_compute_slices, usage.vnets) == (2, 8, 6, 1)
    whole = charge_of(
        parse_vm_spec({"name": "w", **BOOT, "gpu": {"attach": "passthrough"}}),
        disk_gib=0,
        pinned_cores=0,
    )
    assert whole.whole_gpus == 1 and whole.gpu_slices == {}


def test_check_fits_names_the_quota_and_unlimited_is_minus_one() -> None:
    spec = parse_vm_spec({"name": "v", **BOOT, "vcpus": 4})
    charge = charge_of(spec, disk_gib=0, pinned_cores=0)
    used = usage_of([charge])
    quotas = Quotas(vms=10, vcpus=6, memory_mib=-1, disk_gib=0)
    with pytest.raises(InsufficientResources) as err:
        check_fits("acme", quotas, Grants(), used, charge)
    assert err.value.code == "quota_exceeded"
    assert err.value.extra == {"quota": "vcpus", "limit": 6, "used": 4, "asked": 4}
    check_fits("acme", msgspec.structs.replace(quotas, vcpus=-1), Grants(), used, charge)
    lowered = msgspec.structs.replace(quotas, vms=0, vcpus=1)
    assert over(lowered, Grants(), used) == ["vms", "vcpus"]


def test_updates_merge_maps_and_zero_removes() -> None:
    quotas = update_quotas(Quotas(gpu_slices={"1g.10gb": 2}), QuotasUpdate(vms=3))
    assert quotas.vms == 3 and quotas.gpu_slices == {"1g.10gb": 2}
    quotas = update_quotas(quotas, QuotasUpdate(gpu_slices={"1g.10gb": 0, "2g.20gb": -1}))
    assert quotas.gpu_slices == {"2g.20gb": -1}
    with pytest.raises(InvalidInput, match="unlimited"):
        update_quotas(quotas, QuotasUpdate(vcpus=-7))
    grants = update_grants(Grants(), GrantsUpdate(sriov_pfs={"ens1f0": 2}, pinned_cores=4))
    grants = update_grants(grants, GrantsUpdate(sriov_pfs={"ens1f0": 0}))
    assert grants.sriov_pfs == {} and grants.pinned_cores == 4


def test_privileges_are_checked_for_tenants_only_but_the_vran_slice_for_all() -> None:
    spec = parse_vm_spec({"name": "v", **BOOT, "cpu": {"policy": "pinned"}, "numa_node": 0})
    check_privileges(spec, Grants(), infra_admin=True, gpu_addresses=())
    with pytest.raises(Forbidden) as err:
        check_privileges(spec, Grants(), infra_admin=False, gpu_addresses=())
    assert (err.value.code, err.value.extra["grant"]) == ("grant_required", "pinned_cores")
    with pytest.raises(Forbidden) as err:
        check_privileges(spec, Grants(pinned_cores=2), infra_admin=False, gpu_addresses=())
    assert err.value.extra["grant"] == "numa_node_choice"
    vran = parse_vm_spec({"name": "v", **BOOT, "role": "b2b", "gpu": {"role": "vran"}})
    with pytest.raises(Forbidden) as err:
        check_privileges(vran, Grants(), infra_admin=True, gpu_addresses=())
    assert err.value.code == "vran_slice_protected"


def _host(total_gib: int, pages_2m: int) -> HostInventory:
    node = NumaNode(0, (0,), total_gib << 20, total_gib << 20, (Hugepages(2048, pages_2m, 0),))
    return HostInventory("h", "cpu", (), (node,), (), True, False, total_gib << 20, 0)


def test_memory_budget_and_its_refusal_carry_the_numbers() -> None:
    limits = HostLimits(memory_reserve_mib=1024, memory_overcommit=1.5, max_vm_disk_gib=10)
    budget = memory_budget_mib(_host(16, 1024), limits)  # 2 GiB of 2M pages
    assert budget == int((16 * 1024 - 2048 - 1024) * 1.5)
    spec = parse_vm_spec({"name": "v", **BOOT, "memory_mib": 4096})
    check_memory(spec, budget - 4096, budget, limits)
    with pytest.raises(InsufficientResources) as err:
        check_memory(spec, budget - 4095, budget, limits)
    assert err.value.code == "insufficient_memory"
    assert err.value.extra["budget_mib"] == budget


def test_tenant_defaults_come_from_the_config_section(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text('[tenants]\nvms = 3\nwhole_gpus = -1\ngpu_slices = {"1g.10gb" = 2}\n')
    quotas = load_config(path, {"TOWERBOX_TENANTS_VCPUS": "-1"}).tenants.quotas()
    assert (quotas.vms, quotas.vcpus, quotas.whole_gpus) == (3, -1, -1)
    assert quotas.gpu_slices == {"1g.10gb": 2}
    assert load_config(tmp_path / "absent.toml", {}).tenants.quotas().gpu_compute_slices == 0
    for text in (
        "[tenants]\nvms = -4\n",
        '[tenants]\ngpu_slices = {"huge" = 1}\n',
        "[host]\nmemory_overcommit = 0\n",
        "[host]\nmemory_reserve_mib = -1\n",
    ):
        path.write_text(text)
        with pytest.raises(ConfigError, match=r"\[tenants\]|\[host\]"):
            load_config(path, {})


def test_schema_3_adds_tenant_policy_and_disk_sizes_to_an_older_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    old = peewee.SqliteDatabase(str(path))
    db_proxy.initialize(old)
    store_db.MIGRATIONS[0](old)
    store_db.MIGRATIONS[1](old)
    old.execute_sql("ALTER TABLE vm DROP COLUMN disk_gib")  # type: ignore[no-untyped-call]
    spec = {"name": "v", "disks": [{"image": "b.qcow2"}, {"size_gib": 7}, {"size_gib": 3}]}
    old.execute_sql(  # type: ignore[no-untyped-call]
        "INSERT INTO vm (id, name, spec, allocation, desired_state, observed_state, role, "
        "created_at, updated_at) VALUES ('id1', 'v', ?, '{}', 'stopped', 'shutoff', 'other', "
        "'2024-01-01', '2024-01-01')",
        (msgspec.json.encode(spec).decode(),),
    )
    old.pragma("user_version", 2)
    old.close()
    db = store_db.open_database(path)
    try:
        assert db.pragma("user_version") == store_db.SCHEMA_VERSION
        assert Vm.get_by_id("id1").disk_gib == 10
        assert "tenant_policy" in db.get_tables()
    finally:
        db.close()
