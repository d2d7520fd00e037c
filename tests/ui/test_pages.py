"""Page logic in NiceGUI's User simulation against a real appliance process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing.user import User

from tests.support.daemon import free_port
from tests.ui.conftest import log_in
from tests.ui.simulation import simulated_ui
from tests.ui.stack import Appliance, appliance

pytestmark = pytest.mark.anyio


def error_of(element: ui.input) -> str | None:
    return element.error


async def test_signed_out_pages_go_to_login(user: User) -> None:
    await user.open("/vms")
    await user.should_see("Log in")
    await user.should_see("Node test-node")


async def test_bad_credentials_say_so(user: User) -> None:
    await user.open("/login")
    user.find("Username").type("admin")
    user.find("Password").type("not-the-password")
    user.find("Log in").click()
    await user.should_see("Wrong username or password. [bad_credentials]", retries=30)
    await user.should_not_see("Dashboard")


async def test_appliance_down_is_explained(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with simulated_ui(dead, tmp_path / "sessions") as user:
        await user.open("/login")
        await user.should_see("Appliance unreachable")
        user.find("Username").type("admin")
        user.find("Password").type("whatever")
        user.find("Log in").click()
        await user.should_see("[appliance_unreachable]", retries=30)


async def test_frame_shows_node_backends_and_wan_banner(user: User, node: Appliance) -> None:
    await log_in(user, node.password)
    await user.should_see("test-node")
    await user.should_see("GPU: simulated H100 80GB")
    await user.should_see("libvirt: test:///default")
    await user.should_see("WAN: unknown — the edge agent has not reported yet")
    report = {
        "state": "offline",
        "registry_url": "http://registry.invalid",
        "site": "test-node",
        "queued": 5,
        "acked_seq": 1,
        "since": "2026-01-02T03:04:05Z",
        "last_sync_at": "2026-01-02T03:00:00Z",
        "last_error": "connection refused",
        "heartbeat_s": 30,
    }
    with node.http() as api:
        assert api.put("/api/v1/sync/status", json=report).status_code == 200
    await user.should_see("WAN offline since 2026-01-02 03:04:05 UTC", retries=40)
    await user.should_see("last error: connection refused")
    with node.http() as api:
        assert api.put("/api/v1/sync/status", json={**report, "state": "online"}).status_code == 200
    await user.should_see("WAN online · last sync 2026-01-02 03:00:00 UTC", retries=40)


async def test_dashboard_counts_vms_by_role_and_state(user: User, node: Appliance) -> None:
    with node.http() as api:
        made = api.post("/api/v1/vms", json={"name": "dash-1", "appliance": "demo", "start": True})
        assert made.status_code == 201, made.text
    try:
        await log_in(user, node.password)
        await user.should_see(marker="dash-vm-total")
        await user.should_see("running", retries=30)
        await user.should_see("NUMA node 1")
        await user.should_see("Hugepages 1 GiB")
    finally:
        with node.http() as api:
            api.delete("/api/v1/vms/dash-1")


async def open_wizard_on_demo(user: User, node: Appliance) -> None:
    """Logged in as admin, the create wizard open at the spec step of ``demo``."""
    await log_in(user, node.password)
    await user.open("/vms")
    await user.should_see(marker="vm-table")
    user.find("Create VM").click()
    await user.should_see("Create a VM", retries=30)
    user.find(kind=ui.select, marker="create-appliance").elements.pop().value = "demo"
    user.find("Next").click()


async def test_create_wizard_shows_api_validation_at_the_field(user: User, node: Appliance) -> None:
    await open_wizard_on_demo(user, node)
    user.find("Name").type("bad name")
    user.find(marker="create-submit").click()
    await user.should_see("[invalid_name]", retries=30)
    name_input = user.find(kind=ui.input, marker="create-name").elements.pop()
    assert "invalid_name" in (error_of(name_input) or "")

    vcpus = user.find(kind=ui.number, marker="create-vcpus").elements.pop()
    vcpus.value = 999
    name_input.value = "wizard-1"
    user.find(marker="create-submit").click()
    # More vCPUs than the host has threads: the form says so before asking the API.
    for _ in range(30):
        if "CPU threads" in (error_of(vcpus) or ""):
            break
        await asyncio.sleep(0.1)
    assert "This host has" in (error_of(vcpus) or "")
    assert error_of(name_input) is None  # the old error goes when the field is fixed
    assert name_input.value == "wizard-1"  # and what was typed stays

    vcpus.value = 1
    user.find(marker="create-submit").click()
    await user.should_see("VM wizard-1 created and started", retries=30)
    with node.http() as api:
        assert api.get("/api/v1/vms/wizard-1").json()["state"] == "running"
        api.delete("/api/v1/vms/wizard-1")


async def test_wizard_says_what_is_free_and_sends_the_advanced_json(
    user: User, node: Appliance
) -> None:
    with node.http() as api:
        gpu = api.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
        assert api.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 2}}).is_success
    try:
        await open_wizard_on_demo(user, node)
        vcpus = user.find(kind=ui.number, marker="create-vcpus").elements.pop()
        assert "CPU threads on this host" in str(vcpus.props.get("hint"))
        gpu_select = user.find(kind=ui.select, marker="create-gpu").elements.pop()
        assert gpu_select.options["1g.10gb"] == "1g.10gb (2 free now)"
        assert "free now: 2 of 1g.10gb" in str(gpu_select.props.get("hint"))

        user.find(kind=ui.input, marker="create-name").elements.pop().value = "json-1"
        user.find(marker="create-json-fill").click()
        request = user.find(kind=ui.textarea, marker="create-json").elements.pop()
        body = json.loads(request.value)
        assert body["name"] == "json-1" and body["appliance"] == "demo"
        user.find(kind=ui.switch, marker="create-json-use").elements.pop().value = True
        request.value = "{not json"
        user.find(marker="create-submit").click()
        for _ in range(30):
            if error_of(request):
                break
            await asyncio.sleep(0.1)
        assert "[invalid_json]" in (error_of(request) or "")
        body["spec"]["memory_mib"] = 96
        body["start"] = False
        request.value = json.dumps(body)
        user.find(marker="create-submit").click()
        await user.should_see("VM json-1 created", retries=30)
        with node.http() as api:
            made = api.get("/api/v1/vms/json-1").json()
            assert made["memory_mib"] == 96
    finally:
        with node.http() as api:
            api.delete("/api/v1/vms/json-1")
            api.post(f"/api/v1/gpus/{gpu}/apply", json={"instances": []})


async def test_create_wizard_asks_for_the_values_the_appliance_declares(
    user: User, node: Appliance
) -> None:
    await open_wizard_on_demo(user, node)
    await user.should_see("the model the guest reports it serves · default: tinyllama-1.1b")
    model = user.find(kind=ui.input, marker="create-value-model").elements.pop()
    assert model.props.get("placeholder") == "default: tinyllama-1.1b"
    user.find("Name").type("values-1")
    model.value = "no spaces allowed"
    user.find(marker="create-submit").click()
    # The appliance's refusal lands at the value's own input; what was typed stays.
    for _ in range(30):
        if error_of(model):
            break
        await asyncio.sleep(0.1)
    assert "invalid_value" in (error_of(model) or "")
    model.value = "llama-3-8b"
    user.find(marker="create-submit").click()
    await user.should_see("VM values-1 created and started", retries=30)
    with node.http() as api:
        page = api.get("/api/v1/journal", params={"kind": "vm.created", "limit": 1000}).json()
        api.delete("/api/v1/vms/values-1")
    mine = [e for e in page["entries"] if e["state"]["spec"]["name"] == "values-1"]
    assert mine and mine[-1]["state"]["values"] == {"model": "llama-3-8b"}


async def test_vm_detail_actions_with_confirmation(user: User, node: Appliance) -> None:
    with node.http() as api:
        made = api.post(
            "/api/v1/vms", json={"name": "detail-1", "appliance": "demo", "start": True}
        )
        assert made.status_code == 201, made.text
    await log_in(user, node.password)
    await user.open("/vms/detail-1")
    await user.should_see("Spec and allocation")
    await user.should_see("demo")
    state = user.find(kind=ui.badge, marker="vm-state").elements.pop()
    assert state.text == "running"

    user.find(marker="vm-action-stop").click()
    await user.should_see("Force stop detail-1?")
    user.find("Cancel").click()
    await user.should_not_see("Force stop detail-1?", retries=20)
    with node.http() as api:
        assert api.get("/api/v1/vms/detail-1").json()["state"] == "running"

    user.find(marker="vm-action-stop").click()
    await user.should_see("Force stop 1 VM(s)", retries=30)
    user.find("Force stop 1 VM(s)").click()
    await user.should_see("Force stop: done for detail-1", retries=30)
    with node.http() as api:
        assert api.get("/api/v1/vms/detail-1").json()["state"] == "shutoff"

    user.find(marker="vm-action-delete").click()
    await user.should_see("Delete 1 VM(s)", retries=30)
    user.find("Delete 1 VM(s)").click()
    await user.should_see("Delete: done for detail-1", retries=30)
    with node.http() as api:
        assert api.get("/api/v1/vms/detail-1").status_code == 404


async def test_actions_offered_by_state_and_every_interruption_asked(
    user: User, node: Appliance
) -> None:
    with node.http() as api:
        made = api.post("/api/v1/vms", json={"name": "ask-1", "appliance": "demo", "start": True})
        assert made.status_code == 201, made.text
    try:
        await log_in(user, node.password)
        await user.open("/vms/ask-1")
        await user.should_see("Spec and allocation")
        start = user.find(marker="vm-action-start").elements.pop()
        assert not start.enabled  # it is running already
        assert user.find(marker="vm-action-reboot").elements.pop().enabled
        for key, title in (("shutdown", "Shut down ask-1?"), ("reboot", "Reboot ask-1?")):
            user.find(marker=f"vm-action-{key}").click()
            await user.should_see(title, retries=30)
            user.find("Cancel").click()
            await user.should_not_see(title, retries=20)
        with node.http() as api:
            assert api.get("/api/v1/vms/ask-1").json()["state"] == "running"
    finally:
        with node.http() as api:
            api.delete("/api/v1/vms/ask-1")


async def test_a_upf_vm_is_interrupted_only_after_its_name_is_typed(
    user: User, node: Appliance
) -> None:
    with node.http() as api:
        body = {"name": "upf-1", "appliance": "demo", "spec": {"role": "upf"}, "start": True}
        made = api.post("/api/v1/vms", json=body)
        assert made.status_code == 201, made.text
    try:
        await log_in(user, node.password)
        await user.open("/vms/upf-1")
        await user.should_see("Spec and allocation")
        user.find(marker="vm-action-stop").click()
        await user.should_see("the cell or the user plane it carries goes down", retries=30)
        yes = user.find(marker="confirm-yes").elements.pop()
        typed = user.find(kind=ui.input, marker="confirm-typed").elements.pop()
        assert not yes.enabled
        typed.value = "upf"
        assert not yes.enabled
        typed.value = "upf-1"
        assert yes.enabled
        user.find(marker="confirm-yes").click()
        await user.should_see("Force stop: done for upf-1", retries=30)
        with node.http() as api:
            assert api.get("/api/v1/vms/upf-1").json()["state"] == "shutoff"
    finally:
        with node.http() as api:
            api.delete("/api/v1/vms/upf-1")


async def test_vm_action_errors_show_their_code(user: User, node: Appliance) -> None:
    with node.http() as api:
        made = api.post("/api/v1/vms", json={"name": "err-1", "appliance": "demo", "start": True})
        assert made.status_code == 201, made.text
    try:
        await log_in(user, node.password)
        await user.open("/vms/err-1")
        await user.should_see("Spec and allocation")
        # Someone else stops it; this page has not seen that yet (nothing awaited in
        # between) and still offers a reboot, which the appliance refuses.
        with node.http() as api:
            assert api.post("/api/v1/vms/err-1/stop").status_code == 200
        user.find(marker="vm-action-reboot").click()
        await user.should_see("Reboot err-1?", retries=30)
        user.find(marker="confirm-yes").click()
        await user.should_see("Reboot err-1 failed:", retries=30)
        await user.should_see("[", retries=5)
    finally:
        with node.http() as api:
            api.delete("/api/v1/vms/err-1")


async def test_gpu_plan_diff_and_apply(user: User, node: Appliance) -> None:
    await log_in(user, node.password)
    await user.open("/gpus")
    await user.should_see("Memory slots (8)")
    await user.should_see("Compute slices (7)")
    user.find(kind=ui.number, marker="gpu-count-0-1g.10gb").elements.pop().value = 2
    user.find("Dry-run plan").click()
    await user.should_see("+ 1g.10gb at slot", retries=30)
    await user.should_see("Workloads to drain: none")
    user.find(marker="gpu-apply-0").click()
    await user.should_see("Apply layout", retries=30)
    user.find("Apply layout").click()
    await user.should_see("Layout applied: 2 operation(s)", retries=30)
    await user.should_see("1g.10gb · b2b", retries=30)
    with node.http() as api:
        gpu = api.get("/api/v1/gpus").json()["gpus"][0]
        assert [i["profile"] for i in gpu["layout"]["instances"]] == ["1g.10gb", "1g.10gb"]
        api.post(f"/api/v1/gpus/{gpu['uuid']}/apply", json={"instances": []})


async def test_gpu_counts_start_from_the_layout_and_a_claim_blocks_in_the_dry_run(
    user: User, node: Appliance
) -> None:
    with node.http() as api:
        gpu = api.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
        two = {"counts": {"2g.20gb": 2}}
        assert api.post(f"/api/v1/gpus/{gpu}/apply", json=two).status_code == 200
        claim = api.post("/api/v1/gpus/claims", json={"name": "vllm", "profile": "2g.20gb"})
        assert claim.status_code == 201, claim.text
    try:
        await log_in(user, node.password)
        await user.open("/gpus")
        await user.should_see("2g.20gb · b2b · process:vllm", retries=30)
        count = user.find(kind=ui.number, marker="gpu-count-0-2g.20gb").elements.pop()
        assert count.value == 2  # what the GPU has now
        user.find("Dry-run plan").click()
        await user.should_see("Nothing to change", retries=30)
        count.value = 0
        user.find("Dry-run plan").click()
        await user.should_see("The apply would be refused", retries=30)
        await user.should_see("[gpu_claimed_by_process]")
        await user.should_see("process:vllm on 2g.20gb at slot 0")
        assert not user.find(marker="gpu-apply-0").elements.pop().enabled
    finally:
        with node.http() as api:
            api.delete("/api/v1/gpus/claims/vllm")
            api.post(f"/api/v1/gpus/{gpu}/apply", json={"instances": []})


async def test_gpu_plan_refusal_shows_code(user: User, node: Appliance) -> None:
    await log_in(user, node.password)
    await user.open("/gpus")
    user.find(kind=ui.number, marker="gpu-count-0-7g.80gb").elements.pop().value = 1
    user.find(kind=ui.number, marker="gpu-count-0-1g.10gb").elements.pop().value = 7
    user.find("Dry-run plan").click()
    await user.should_see("[mig_compute_exceeded]", retries=30)


async def test_n6_vnets_per_tenant_plan_and_apply(user: User, node: Appliance) -> None:
    with node.http() as api:
        api.post("/api/v1/tenants", json={"name": "acme"})
        assert api.put(
            "/api/v1/n6/trunks/br-n6", json={"kind": "ovs", "ports": ["ens2f0"]}
        ).is_success
        vnet = {
            "tenant": "acme",
            "name": "llm",
            "trunk": "br-n6",
            "vlan": 100,
            "subnet": "10.100.0.0/24",
            "gateway": "10.100.0.1",
            "ue_pools": ["10.45.0.0/16"],
        }
        made = api.post("/api/v1/n6/vnets", json=vnet)
        assert made.status_code in (201, 409), made.text
    await log_in(user, node.password)
    await user.open("/n6")
    await user.should_see("Tenant acme", retries=30)
    await user.should_see("br-n6 (ovs) · ports ens2f0 · datapath auto")
    user.find(marker="n6-plan").click()
    await user.should_see("VLAN 100", retries=30)
    user.find(marker="n6-apply").click()
    await user.should_see("Apply the N6 declaration?", retries=30)
    user.find(marker="confirm-yes").click()
    await user.should_see("N6 applied", retries=150)
    await user.should_see("Last apply: applied", retries=50)


async def test_events_newest_first_and_filtered(user: User, node: Appliance) -> None:
    with node.http() as api:
        api.post("/api/v1/tenants", json={"name": "events-tenant"})
    await log_in(user, node.password)
    await user.open("/events")
    await user.should_see(marker="events-table")
    table = user.find(kind=ui.table, marker="events-table").elements.pop()
    seqs = [r["seq"] for r in table.rows]
    assert seqs == sorted(seqs, reverse=True) and seqs
    user.find(kind=ui.select, marker="events-kind").elements.pop().value = "tenant."
    assert table.rows and all(r["kind"].startswith("tenant.") for r in table.rows)
    # An audit line: who, which object by name, what changed.
    created = next(r for r in table.rows if r["kind"] == "tenant.created")
    assert created["actor"] == "admin"
    assert created["object"] == "tenant events-tenant"
    assert created["summary"].startswith("created")
    with node.http() as api:
        api.post("/api/v1/tenants", json={"name": "events-tenant-2"})
    for _ in range(40):
        if any("events-tenant-2" in r["object"] for r in table.rows):
            break
        await asyncio.sleep(0.1)
    assert any("events-tenant-2" in r["object"] for r in table.rows)


async def test_logout_ends_the_session(user: User, node: Appliance) -> None:
    await log_in(user, node.password)
    user.find("Log out").click()
    await user.should_see("Log in", retries=30)
    await user.open("/vms")
    await user.should_see("Log in")


async def test_gpu_named_layout_and_schedules_with_next_run(user: User, node: Appliance) -> None:
    with node.http() as api:
        gpu = api.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
        schedule = {"gpu": gpu, "cron": "0 3 1 1 *", "target": {"layout": "offpeak"}}
        made = api.put("/api/v1/gpus/schedules/new-year", json=schedule)
        assert made.status_code == 200, made.text
    try:
        await log_in(user, node.password)
        await user.open("/gpus")
        await user.should_see(marker="gpu-schedules")
        table = user.find(kind=ui.table, marker="gpu-schedules").elements.pop()
        (row,) = [r for r in table.rows if r["name"] == "new-year"]
        assert row["cron"] == "0 3 1 1 *"
        assert row["next_run"].endswith("-01-01 03:00:00 UTC")  # the appliance's next run
        user.find(kind=ui.toggle, marker="gpu-mode-0").elements.pop().value = "layout"
        user.find(kind=ui.select, marker="gpu-layout-0").elements.pop().value = "offpeak"
        user.find("Dry-run plan").click()
        await user.should_see("+ 1g.10gb at slot 3", retries=30)
    finally:
        with node.http() as api:
            api.delete("/api/v1/gpus/schedules/new-year")


async def test_tenant_admin_sees_refusals_with_their_code(user: User, node: Appliance) -> None:
    with node.http() as api:
        api.post("/api/v1/tenants", json={"name": "beta"})
        made = api.post(
            "/api/v1/users",
            json={
                "username": "beta-admin",
                "password": "beta-pass-123",
                "role": "tenant-admin",
                "tenant": "beta",
            },
        )
        assert made.status_code in (201, 409), made.text
    await user.open("/login")
    user.find("Username").type("beta-admin")
    user.find("Password").type("beta-pass-123")
    user.find("Log in").click()
    await user.should_see(marker="dash-vm-total", retries=50)
    await user.should_see("beta-admin (tenant-admin, beta)")
    await user.should_see("Host inventory: ", retries=20)
    await user.should_see("[node_scope_required]")
    await user.open("/n6")
    await user.should_see("Plan and apply need the infra-admin role.")


async def test_appliance_going_down_shows_in_the_frame(tmp_path: Path) -> None:
    with appliance(tmp_path / "node") as own:
        async with simulated_ui(own.url, tmp_path / "sessions") as user:
            await log_in(user, own.password)
            await user.should_see("healthy")
            own.daemon.proc.terminate()
            own.daemon.proc.wait(timeout=30)
            await user.should_see("appliance unreachable", retries=60)
            await user.should_see("[appliance_unreachable]")
