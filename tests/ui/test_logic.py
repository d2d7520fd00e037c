"""The UI's pure parts: banner words, slot-map geometry, plan diff, field mapping."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from appliance.domain.vm_spec import VmSpec
from towerbox_core.api.services import RoleView, ServiceProgress
from towerbox_core.api.tenants import Grants, Quotas, TenantUsage, VmOptions
from towerbox_core.api.vms import VmCreateRequest
from ui import attention, fmt, slotmap, wan
from ui.api import ApiError
from ui.form_errors import field_of
from ui.frame import badges_from, short_badge
from ui.pages.common import safe_next
from ui.pages.dashboard import is_alert, vm_counts
from ui.pages.n6 import status_lines, vnet_rows
from ui.pages.service_deploy import deploy_body
from ui.pages.service_update import update_body
from ui.pages.tenant_edit import (
    QUOTA_NUMBERS,
    grants_update,
    map_update,
    parse_map,
    quotas_update,
)
from ui.pages.vm_create import gpu_options
from ui.usage import UsageBar, gpu_slice_lines, usage_bars
from ui.vm_capacity import node_capacity, tenant_capacity
from ui.vm_charts import chart_series, gpu_note, gpu_series, rates
from ui.vm_offer import (
    HostFacts,
    WizardInput,
    admin_offer,
    catalog_disks,
    create_body,
    problems,
    tenant_offer,
    typed_value,
    value_label,
)

H100_PROFILES: list[dict[str, Any]] = [
    {"name": "1g.10gb", "compute_slices": 1, "size": 1, "starts": [0, 1, 2, 3, 4, 5, 6]},
    {"name": "2g.20gb", "compute_slices": 2, "size": 2, "starts": [0, 2, 4]},
    {"name": "3g.40gb", "compute_slices": 3, "size": 4, "starts": [0, 4]},
    {"name": "7g.80gb", "compute_slices": 7, "size": 8, "starts": [0]},
]


def test_banner_without_the_route_or_agent() -> None:
    missing = wan.banner(None, ApiError(404, "not_found", "no route"))
    assert missing.tone == "off" and "not configured" in missing.text
    never = wan.banner({"agent": "never reported", "wan": "unknown", "queued": 1})
    assert never.tone == "unknown" and "1 journal entry queued" in never.text
    gone = wan.banner(
        {
            "agent": "not running",
            "wan": "unknown",
            "queued": 4,
            "reported_at": "2026-01-01T00:00:00Z",
        }
    )
    assert "edge agent not running (last report 2026-01-01 00:00:00 UTC)" in gone.text


def test_banner_online_and_offline() -> None:
    online = wan.banner(
        {"agent": "running", "wan": "online", "queued": 0, "last_sync_at": "2026-01-01T10:00:00Z"}
    )
    assert online == wan.Banner(
        "WAN online · last sync 2026-01-01 10:00:00 UTC · 0 journal entries queued", "online"
    )
    offline = wan.banner(
        {
            "agent": "running",
            "wan": "offline",
            "offline_since": "2026-01-01T11:00:00+00:00",
            "queued": 12,
            "last_sync_at": None,
            "last_error": "timeout",
        }
    )
    assert offline.tone == "offline"
    assert offline.text == (
        "WAN offline since 2026-01-01 11:00:00 UTC · 12 journal entries queued · never synced"
        " · last error: timeout"
    )


def test_slot_map_geometry_and_blocks() -> None:
    geo = slotmap.geometry(H100_PROFILES)
    assert (geo.memory_slots, geo.compute_slices) == (8, 7)
    layout = [
        {"profile": "3g.40gb", "start": 0, "role": "vran", "owner": "du1"},
        {"profile": "1g.10gb", "start": 6, "role": "b2b", "owner": "llm"},
    ]
    memory = slotmap.memory_blocks(layout, geo)
    assert [(b.start, b.span, b.role) for b in memory] == [
        (0, 4, "vran"),
        (4, 1, "free"),
        (5, 1, "free"),
        (6, 1, "b2b"),
        (7, 1, "free"),
    ]
    compute = slotmap.compute_blocks([{"profile": "3g.40gb", "start": 4, "role": "b2b"}], geo)
    # Starting at memory slot 4, three slices end at the seventh: no overflow.
    assert [(b.start, b.span) for b in compute if not b.free] == [(4, 3)]
    assert sum(b.span for b in compute) == 7


def test_plan_diff_destroys_first_then_creates_then_kept() -> None:
    plan = {
        "ops": [
            {"op": "create", "profile": "1g.10gb", "start": 5, "role": "b2b", "owner": None},
            {"op": "destroy", "profile": "2g.20gb", "start": 4, "role": "b2b", "owner": "llm"},
        ],
        "kept": [{"profile": "3g.40gb", "start": 0, "role": "vran", "owner": "du1"}],
    }
    assert slotmap.plan_lines(plan) == [
        ("-", "2g.20gb at slot 4 (b2b, owner llm)"),
        ("+", "1g.10gb at slot 5 (b2b)"),
        ("=", "3g.40gb at slot 0 (vran, owner du1)"),
    ]
    assert [i["start"] for i in slotmap.target_instances(plan)] == [0, 5]


@pytest.mark.parametrize(
    ("problem", "field"),
    [
        ({"code": "invalid_name", "field": "name"}, "name"),
        ({"code": "invalid_vcpus", "field": "spec.vcpus"}, "vcpus"),
        ({"code": "invalid_nic", "field": "nics[0].bridge"}, "nics"),
        (
            {"code": "invalid_request", "errors": [{"key": "memory_mib", "message": "x"}]},
            "memory_mib",
        ),
        ({"code": "vm_exists"}, None),
    ],
)
def test_problem_field_to_wizard_input(problem: dict[str, Any], field: str | None) -> None:
    assert field_of(ApiError(422, problem["code"], "x", problem)) == field


def test_login_redirect_stays_on_this_site() -> None:
    assert safe_next("/vms/a") == "/vms/a"
    assert safe_next("//evil.example/") == "/"
    assert safe_next("https://evil.example/") == "/"
    assert safe_next(None) == "/"


def test_badges_from_healthz() -> None:
    health = {
        "backends": {
            "libvirt": {"summary": "libvirt: qemu:///system (qemu emulation)"},
            "gpu": {"summary": "GPU: simulated H100 80GB x1 (no NVIDIA driver: ...)"},
            "n6": {"summary": ["N6 backend: simulated ovs (no host network changes)"]},
        }
    }
    lines = badges_from(health)
    assert lines[0].startswith("GPU: simulated H100 80GB")
    assert [short_badge(line) for line in lines] == [
        "GPU: simulated H100 80GB x1",
        "libvirt: qemu:///system",
        "N6 backend: simulated ovs",
    ]


def test_dashboard_counts_and_alerts() -> None:
    vms = [
        {"role": "b2b", "state": "running"},
        {"role": "b2b", "state": "shutoff"},
        {"role": "vran", "state": "running"},
    ]
    counts = vm_counts(vms)
    assert counts["b2b"]["running"] == 1 and counts["vran"]["running"] == 1
    assert is_alert({"kind": "drift.domain_missing"})
    assert is_alert({"kind": "gpu.layout_failed"})
    assert is_alert({"kind": "vm.state", "state": {"state": "crashed"}})
    assert not is_alert({"kind": "vm.state", "state": {"state": "running"}})


def test_vnets_joined_with_live_counters() -> None:
    vnets = [
        {
            "tenant": "acme",
            "name": "llm",
            "vlan": 100,
            "subnet": "10.0.0.0/24",
            "gateway": "10.0.0.1",
            "ue_pools": ["10.45.0.0/16"],
        }
    ]
    state = [
        {
            "vnet": "acme/llm",
            "applied": True,
            "attached_vms": ["llm-1"],
            "rx_bytes": 2048,
            "rx_packets": 2,
            "tx_bytes": 0,
            "tx_packets": 0,
        }
    ]
    rows = vnet_rows(vnets, state)
    assert rows["acme"][0]["vms"] == "llm-1"
    assert rows["acme"][0]["rx"] == "2.0 KiB / 2 pkts"


def test_n6_status_says_the_datapath_and_the_last_apply() -> None:
    failed = {
        "backends": ["N6 backend: Open vSwitch 3.1.0, datapath netdev (userspace)"],
        "ovs_datapaths": {
            "usable": ["netdev"],
            "auto": "netdev",
            "unavailable": {"system": "failed to open datapath of type system"},
        },
        "last_apply": {
            "ok": False,
            "trigger": "apply",
            "at": "2026-11-30T16:00:00+00:00",
            "journal_seq": 7,
            "changes": {},
            "code": "ovs_interface_error",
            "message": "Open vSwitch could not set up interface n6up: no such device",
        },
    }
    assert status_lines(failed) == [
        ("Open vSwitch datapath for new trunks: netdev", False),
        ("Datapath system unavailable: failed to open datapath of type system", False),
        (
            "Last apply failed at 2026-11-30 16:00:00 UTC: [ovs_interface_error] "
            "Open vSwitch could not set up interface n6up: no such device",
            True,
        ),
    ]
    repaired = {
        "ovs_datapaths": None,
        "last_apply": {**failed["last_apply"], "ok": True, "trigger": "repair",
                       "changes": {"ovs": ["+ port a", "+ port b"]}},
    }  # fmt: skip
    assert status_lines(repaired) == [
        ("Last repair (reconcile): applied, 2 change(s), at 2026-11-30 16:00:00 UTC", False)
    ]
    simulated = {"usable": ["system", "netdev"], "auto": "system", "unavailable": {}}
    assert status_lines({"ovs_datapaths": {**simulated, "simulated": True}}) == [
        ("Open vSwitch datapath for new trunks: system (simulated)", False),
        ("Last apply: never applied", False),
    ]
    assert status_lines({"ovs_datapaths": None, "last_apply": None}) == [
        ("Last apply: never applied", False)
    ]
    waiting = {"ovs_datapaths": None, "last_apply": None, "pending": ["VNet acme/llm added"]}
    assert status_lines(waiting) == [
        ("Last apply: never applied", False),
        ("Declared, not applied yet: VNet acme/llm added", False),
    ]


def test_chart_series_rates() -> None:
    history = [
        # QEMU's resident size is never plotted: the guest's own use, else its size.
        {
            "at": 100.0,
            "cpu_pct": 5.0,
            "rss_kib": 9999,
            "memory_kib": 2048,
            "net_rx_bytes": 0,
            "net_tx_bytes": 0,
        },
        {
            "at": 102.0,
            "cpu_pct": 7.0,
            "rss_kib": 9999,
            "memory_kib": 8192,
            "guest_used_kib": 4096,
            "net_rx_bytes": 2000,
            "net_tx_bytes": 500,
        },
    ]
    series = chart_series(history)
    assert series["mem"] == [2.0, 4.0]
    assert series["rx"] == [None, 1000.0]
    assert series["tx"] == [None, 250.0]
    assert series["read"] == series["write"] == [None, 0.0]


def test_disk_rates_never_go_negative_and_skip_a_gap() -> None:
    history = [
        {"at": 10.0, "disk_read_bytes": 4096, "disk_write_bytes": 0},
        {"at": 14.0, "disk_read_bytes": 8192, "disk_write_bytes": 4000},
        {"at": 14.0, "disk_read_bytes": 9000, "disk_write_bytes": 5000},  # no time passed
        {"at": 16.0, "disk_read_bytes": 0, "disk_write_bytes": 6000},  # QEMU restarted
    ]
    assert rates(history, "disk_read_bytes") == [None, 1024.0, None, 0.0]
    assert rates(history, "disk_write_bytes") == [None, 1000.0, None, 500.0]
    assert rates([], "disk_read_bytes") == []


def test_gpu_series_and_note() -> None:
    points = [
        {"at": 0.0, "utilization_pct": 60.0, "memory_used_bytes": 5 << 30},
        {"at": 5.0, "utilization_pct": None, "memory_used_bytes": 1 << 30},
    ]
    assert gpu_series(points) == {"time": ["00:00:00", "00:00:05"], "busy": [60.0, None]}
    assert gpu_note(points) == (
        "The GPU driver reports no activity for this slice; memory used 1.0 GiB."
    )
    assert gpu_note(points[:1]) == "Memory used on its slice: 5.0 GiB."
    assert "holds no GPU slice" in gpu_note([])


def test_formats() -> None:
    assert fmt.mib(32768) == "32 GiB"
    assert fmt.mib(128) == "128 MiB"
    assert fmt.when(0) == "1970-01-01 00:00:00 UTC"
    assert fmt.when("garbage") == "garbage"


def test_vm_paths_quote_the_name_whole() -> None:
    from ui.api import vm_path

    assert vm_path("llm-1", "stop") == "/api/v1/vms/llm-1/stop"
    assert vm_path("..") == "/api/v1/vms/.."  # no slash: the appliance answers 404 or 422
    assert vm_path("a/b", "console") == "/api/v1/vms/a%2Fb/console"


def test_usage_bars_unlimited_over_and_none() -> None:
    quotas = Quotas(vms=4, vcpus=-1, memory_mib=2048, disk_gib=0, vnets=1)
    usage = TenantUsage(vms=1, vcpus=12, memory_mib=3072, vnets=1)
    bars = {b.key: b for b in usage_bars(quotas, usage, over=["memory_mib"])}
    assert bars["vms"] == UsageBar("vms", "VMs", "1 of 4", 0.25, False)
    assert bars["vcpus"].text == "12 (unlimited)" and bars["vcpus"].fraction == 0.0
    assert bars["memory_mib"].text == "3 GiB of 2 GiB" and bars["memory_mib"].over
    assert bars["memory_mib"].fraction == 1.0
    assert bars["disk_gib"].text == "0 GiB of 0 GiB (none allowed)"
    assert not bars["disk_gib"].over
    assert bars["vnets"].fraction == 1.0 and not bars["vnets"].over
    lines = gpu_slice_lines(Quotas(gpu_slices={"1g.10gb": 2, "3g.40gb": -1}), usage)
    assert lines == ["1g.10gb: 0 of 2", "3g.40gb: 0 of unlimited"]


def test_tenant_editor_maps_merge_and_removed_keys_revoke() -> None:
    assert parse_map(" 1g.10gb=2; 3g.40gb = 1 ,", "x") == {"1g.10gb": 2, "3g.40gb": 1}
    for bad in ("1g.10gb", "=2", "a=b", "a=1, a=2"):
        with pytest.raises(ValueError, match="x: "):
            parse_map(bad, "x")
    assert map_update({"2M": 512, "1G": 1024}, {"1G": 2048}) == {"2M": 0, "1G": 2048}
    old = Quotas(gpu_slices={"1g.10gb": 2})
    numbers = {key: 1 for key, _ in QUOTA_NUMBERS}
    update = quotas_update({**numbers, "vcpus": -1}, "3g.40gb=1", old)
    assert update.vcpus == -1 and update.gpu_slices == {"1g.10gb": 0, "3g.40gb": 1}
    with pytest.raises(ValueError, match="VMs: give a number"):
        quotas_update({**numbers, "vms": None}, "", old)
    grants = grants_update(
        2, True, "1G=4096", False, "", "0000:3b:00.0, 0000:3b:00.1", Grants(sriov_pfs={"e0": 2})
    )
    assert grants.hugepages == {"1G": 4096} and grants.sriov_pfs == {"e0": 0}
    assert grants.pci_devices == ["0000:3b:00.0", "0000:3b:00.1"] and grants.pinned_cores == 2


HOST = {
    "inventory": {
        "threads": [{"cpu": i} for i in range(8)],
        "nodes": [{"id": 0, "memory_total_kib": 4 * 1048576}, {"id": 1, "memory_total_kib": 0}],
    }
}


def test_wizard_offer_for_a_tenant_follows_its_options() -> None:
    options = VmOptions(
        tenant="acme",
        roles=["b2b", "other"],
        grants=Grants(hugepages={"2M": 1024, "1G": 0}),
        gpu_profiles=["1g.10gb"],
        numa_nodes=[],
    )
    vnets = [{"tenant": "acme", "name": "llm"}, {"tenant": "beta", "name": "cams"}]
    offer = tenant_offer(options, vnets, None)
    assert offer.roles == ["other", "b2b"] and offer.tenants == ["acme"] and offer.tenant_fixed
    assert (offer.pinned, offer.isolated, offer.hugepages) == (False, False, ["2M"])
    assert offer.vnets == {"acme": ["llm"]} and offer.host is None
    admin = admin_offer(["acme"], ["1g.10gb", "7g.80gb", "1g.10gb"], vnets, HOST)
    assert admin.roles == ["other", "b2b", "vran", "upf"] and admin.numa_nodes == [0, 1]
    assert admin.gpu_profiles == ["1g.10gb", "7g.80gb"]
    assert admin.host == HostFacts(threads=8, memory_mib=4096)


def test_wizard_checks_and_sends_a_vm_spec() -> None:
    offer = admin_offer([], [], [], HOST)
    form = WizardInput(name=" ", vcpus=9, memory_mib=5000, hugepages="1G", isolated=True)
    assert set(problems(form, offer)) == {"name", "vcpus", "memory_mib", "cpu"}
    form = WizardInput(
        name="llm-1",
        appliance="demo",
        vcpus=2,
        memory_mib=2048,
        tenant="acme",
        role="b2b",
        pinned=True,
        isolated=True,
        hugepages="1G",
        numa_node=0,
        gpu_profile="1g.10gb",
        vnet="llm",
        disk_gib=20,
        catalog_disks=[{"image": "base.qcow2"}],
    )
    assert problems(form, offer) == {}
    body = create_body(form)
    request = msgspec.convert(body, VmCreateRequest)
    assert request.appliance == "demo" and request.start
    # The spec decodes as a VmSpec: the wizard sends no field the API does not take.
    spec = msgspec.convert({**body["spec"], "name": "llm-1"}, VmSpec)
    assert spec.cpu.isolated and spec.hugepages.value == "1G" and spec.numa_node == 0
    assert spec.gpu is not None and spec.gpu.profile == "1g.10gb"
    assert [n.vnet for n in spec.nics] == ["llm"]
    assert [(d.image, d.size_gib) for d in spec.disks] == [("base.qcow2", None), (None, 20)]
    disk_entry = {
        "image": {"kind": "disk", "file": "u.img"},
        "default_spec": {"disks": [{"size_gib": 9}]},
    }
    assert catalog_disks(disk_entry) == [{"image": "u.img"}, {"size_gib": 9}]


def test_value_inputs_become_the_request_values() -> None:
    assert typed_value({"type": "list"}, "ssh-ed25519 AAA a\n\n  ssh-rsa BBB b \n") == [
        "ssh-ed25519 AAA a",
        "ssh-rsa BBB b",
    ]
    assert typed_value({"type": "integer"}, 8.0) == 8
    assert typed_value({"type": "integer"}, None) is None
    assert typed_value({"type": "boolean"}, None) is False
    assert typed_value({}, "  llama-3-8b ") == "llama-3-8b"
    assert value_label("ssh_authorized_key", {"required": True}) == "ssh_authorized_key *"
    assert value_label("model", {"default": "tinyllama-1.1b"}) == "model"
    # Left empty, a value is not sent: the entry's default applies.
    body = create_body(WizardInput(name="a", values={"model": "", "keys": [], "n": 0}))
    assert body["values"] == {"n": 0}


def test_a_one_role_service_from_the_catalog() -> None:
    body = deploy_body(" ", "demo", "acme", 2, {"model": "", "keys": ["k"]})
    assert body == {
        "service": {
            "name": "demo",
            "roles": [{"name": "app", "catalog": "demo", "count": 2, "values": {"keys": ["k"]}}],
        },
        "tenant": "acme",
    }
    assert "values" not in deploy_body("web", "demo", "", 1, {})["service"]["roles"][0]


def test_an_update_names_only_what_changes() -> None:
    role = RoleView("api", "demo", 2, 2, "TCP port 80 answers", [], {"model": "a"})
    body = update_body(role, "demo", {"model": "b", "hf_token": ""}, 1, 0)
    # An empty value keeps its setting: not sent, and the request merges.
    assert body == {
        "role": "api",
        "max_surge": 1,
        "max_unavailable": 0,
        "values": {"model": "b"},
        "merge_values": True,
    }
    moved = update_body(role, "vllm-inference", {}, 0, 1, "24.04-vllm")
    assert moved["catalog"] == "vllm-inference" and "values" not in moved
    assert moved["version"] == "24.04-vllm"  # what the dialog showed


def test_the_update_dialog_says_what_it_does_to_the_entry_version() -> None:
    from ui.pages.service_update import version_note

    at_1 = RoleView("api", "demo", 2, 2, "TCP port 80 answers", [], version="1")
    assert (
        version_note(at_1, {"name": "demo", "version": "1"})
        == "Runs demo v1, as the catalog has it."
    )
    assert version_note(at_1, {"name": "demo", "version": "2"}) == (
        "Runs demo v1; the update moves it to demo v2, even with nothing else changed."
    )
    assert "moves it to vllm v3" in version_note(at_1, {"name": "vllm", "version": "3"})
    unrecorded = RoleView("api", "demo", 2, 2, "TCP port 80 answers", [])
    assert version_note(unrecorded, {"name": "demo", "version": "2"}) == (
        "Runs demo, as the catalog has it."
    )
    assert version_note(None, {"name": "demo", "version": "1"}) == ""


def test_capacity_hints_from_the_host_and_gpus() -> None:
    host = {
        "inventory": {
            "thread_count": 8,
            "memory_total_kib": 8 * 1048576,
            "memory_available_kib": 6 * 1048576,
            "pci": [
                {
                    "address": "0000:3b:00.0",
                    "class_id": "0x020000",
                    "netdev": "ens1f0",
                    "sriov_totalvfs": 8,
                    "numa_node": 0,
                },
                {
                    "address": "0000:3b:02.0",
                    "class_id": "0x020000",
                    "physfn": "0000:3b:00.0",
                    "numa_node": 0,
                },
                {"address": "0000:5e:00.0", "class_id": "0x120000", "numa_node": 1},
                {"address": "0000:00:00.0", "class_id": "0x060000", "numa_node": 0},
            ],
        },
        "allocation": {
            "nodes": [
                {"id": 0, "cores": {"free": 3}, "hugepages": {"2M": {"free": 512}}},
                {"id": 1, "cores": {"free": 4}, "hugepages": {}},
            ]
        },
    }
    gpus = [
        {
            "layout": {
                "instances": [
                    {"profile": "1g.10gb", "role": "b2b", "owner": None},
                    {"profile": "1g.10gb", "role": "b2b", "owner": "llm"},
                    {"profile": "3g.40gb", "role": "vran", "owner": None},
                ]
            }
        }
    ]
    cap = node_capacity(host, gpus)
    assert cap.hints["vcpus"] == "8 CPU threads on this host"
    assert cap.hints["memory_mib"] == "8192 MiB on this host, 6144 MiB available now"
    assert cap.hints["cpu"] == "free whole cores for pinning: node 0: 3, node 1: 4"
    assert cap.hints["hugepages"] == "free pages: node 0: 512 of 2M; node 1: none"
    assert cap.gpu_free == {"1g.10gb": 1} and cap.hints["gpu"] == "free now: 1 of 1g.10gb"
    assert cap.sriov_pfs == ["ens1f0"]
    assert list(cap.pci_devices) == ["0000:5e:00.0"]  # no PF, VF or bridge
    offer = admin_offer(["acme"], ["1g.10gb", "3g.40gb"], [], HOST, gpus)
    assert gpu_options(offer) == {
        "": "none",
        "1g.10gb": "1g.10gb (1 free now)",
        "3g.40gb": "3g.40gb (0 free now)",
        "role:vran": "the protected vRAN slice",
    }


def test_capacity_for_a_tenant_is_its_quota_left() -> None:
    detail = {
        "quotas": {"vcpus": 8, "memory_mib": -1, "disk_gib": 100, "gpu_slices": {"1g.10gb": 2}},
        "usage": {"vcpus": 6, "memory_mib": 4096, "disk_gib": 30, "gpu_slices": {"1g.10gb": 2}},
        "grants": {"sriov_pfs": {"ens1f0": 2, "ens1f1": 0}, "pci_devices": ["0000:5e:00.0"]},
    }
    cap = tenant_capacity(detail)
    assert cap.hints == {
        "vcpus": "quota: 2 of 8 vCPUs left",
        "memory_mib": "quota: unlimited, 4096 MiB in use",
        "disks": "quota: 70 of 100 GiB of disk left",
        "gpu": "quota left: 1g.10gb 0 of 2 left",
    }
    assert cap.sriov_pfs == ["ens1f0"] and cap.pci_devices == {"0000:5e:00.0": "0000:5e:00.0"}
    assert not cap.gpus_seen


def test_the_wizard_sends_sriov_pci_and_a_vran_slice_by_role() -> None:
    form = WizardInput(
        name="du-1",
        role="vran",
        gpu_profile="role:vran",
        vnet="llm",
        sriov_pf="ens1f0",
        pci_devices=["0000:5e:00.0"],
    )
    spec = msgspec.convert({**create_body(form)["spec"], "name": "du-1"}, VmSpec)
    assert spec.gpu is not None and (spec.gpu.role, spec.gpu.profile) == ("vran", None)
    assert [(n.kind.value, n.vnet, n.pf) for n in spec.nics] == [
        ("vnet", "llm", None),
        ("sriov", None, "ens1f0"),
    ]
    assert spec.pci_devices == ("0000:5e:00.0",)


def test_attention_lines_vran_first_then_gpus_and_n6() -> None:
    waiting = {"kind": "waiting_for_gpu", "reason": "no slice [no_free_gpu_slice]", "since": None}
    vms = [
        {
            "name": "b",
            "role": "b2b",
            "desired_state": "running",
            "state": "shutoff",
            "attention": waiting,
        },
        {
            "name": "a",
            "role": "b2b",
            "desired_state": "running",
            "state": "running",
            "attention": None,
        },
        {
            "name": "du",
            "role": "vran",
            "desired_state": "running",
            "state": "shutoff",
            "attention": {"kind": "start_failed", "reason": "boom [x]", "since": None},
        },
    ]
    gpus = {
        "gpus": [
            {
                "name": "H100",
                "uuid": "GPU-1",
                "drift": ["1g.10gb at slot 0 is committed but missing on the GPU"],
            }
        ]
    }
    n6 = {
        "last_apply": {"ok": False, "at": None, "code": "ovs_interface_error", "message": "no dev"}
    }
    assert attention.lines(vms, gpus, n6) == [
        "du (desired running, shutoff): start failed: boom [x]",
        "b (desired running, shutoff): waiting for a GPU slice: no slice [no_free_gpu_slice]",
        "GPU H100 (GPU-1): 1g.10gb at slot 0 is committed but missing on the GPU",
        "N6 not applied: the last apply failed at -: [ovs_interface_error] no dev",
    ]
    assert attention.badge(vms[0]) == "waiting for a GPU slice" and attention.badge(vms[1]) == ""
    # Declared but not applied: said whether or not the last apply failed.
    declared = {"last_apply": None, "pending": ["trunk br-n6 added", "VNet acme/llm changed"]}
    assert attention.lines([], None, declared) == [
        "N6 changes not applied: trunk br-n6 added, VNet acme/llm changed (the N6 page's "
        "plan shows them; apply to make them)"
    ]
    assert attention.lines([], None, {**n6, "pending": []}) == [
        "N6 not applied: the last apply failed at -: [ovs_interface_error] no dev"
    ]


def test_a_sweep_reaches_only_the_parts_that_follow_sweeps() -> None:
    from towerbox_core.sse import SseEvent
    from ui.live import Change, _Part, changes, journalled

    async def nothing() -> None:
        return None

    swept = changes(SseEvent("sweep", '{"at": 1700000000.5}'))
    assert swept == [Change("sweep", "sweep", "", None, {"at": 1700000000.5})]
    charts = _Part(nothing, lambda _change: False, None, signals=("sweep",))
    log = _Part(nothing, journalled, None)
    everything = _Part(nothing, lambda _change: True, None)
    assert charts.matches(swept[0])
    assert not log.matches(swept[0])
    assert not everything.matches(swept[0])
    stop = Change("vm.stop", "vm", "1", "a", {"state": "shutoff"})
    assert not charts.matches(stop)
    assert log.matches(stop)


def test_a_part_polls_at_its_pace_only_while_the_stream_is_down_or_it_is_busy() -> None:
    from ui.live import SAFETY_S, _Part

    async def nothing() -> None:
        return None

    busy = [False]
    part = _Part(nothing, lambda _change: True, None, poll_s=1.0, busy=lambda: busy[0])
    assert part.interval(live=False) == 1.0
    assert part.interval(live=True) == SAFETY_S
    busy[0] = True  # e.g. a download whose bytes no event tells
    assert part.interval(live=True) == 1.0
    slow = _Part(nothing, lambda _change: True, None, poll_s=60.0)
    assert slow.interval(live=True) == 60.0


def test_a_sync_event_reaches_only_the_parts_that_follow_it() -> None:
    from towerbox_core.sse import SseEvent
    from ui.live import SYNCED, _Part, changes

    async def nothing() -> None:
        return None

    [synced] = changes(SseEvent("sync", '{"at": 1700000000.5}'))
    assert synced.kind == SYNCED
    banner = _Part(nothing, lambda change: change.object_type == "alert", None, signals=(SYNCED,))
    everything = _Part(nothing, lambda _change: True, None)
    assert banner.matches(synced) and not everything.matches(synced)


def test_a_failed_operation_is_not_shown_as_done() -> None:
    from ui.pages.services import progress_title

    steps = ["deploy started"]
    assert progress_title(ServiceProgress("deploy", False, steps)) == "deploy (under way)"
    assert progress_title(ServiceProgress("deploy", True, steps)) == "deploy (done)"
    failed = ServiceProgress("update", True, steps, failed=True)
    assert progress_title(failed) == "update (failed: the message above says why)"
