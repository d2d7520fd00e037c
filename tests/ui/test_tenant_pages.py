"""The Tenants page, the dashboard's tenant card and the wizard's offer, in NiceGUI's
User simulation against a real appliance process."""

from __future__ import annotations

import pytest
from nicegui import ui
from nicegui.testing.user import User

from tests.ui.conftest import log_in
from tests.ui.stack import Appliance
from tests.ui.tenancy import ADMIN, PASSWORD, TENANT, set_up_tenant

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tenant_admin(user: User, node: Appliance) -> User:
    """The simulated UI, signed in as the tenant's admin."""
    with node.http() as api:
        set_up_tenant(api)
    await user.open("/login")
    user.find("Username").type(ADMIN)
    user.find("Password").type(PASSWORD)
    user.find("Log in").click()
    await user.should_see(marker="dash-vm-total", retries=50)
    return user


async def test_tenants_page_bars_quota_change_note_and_create(user: User, node: Appliance) -> None:
    with node.http() as api:
        set_up_tenant(api)
    await log_in(user, node.password)
    await user.should_see("Tenants")
    await user.open("/tenants")
    await user.should_see(marker=f"tenant-{TENANT}", retries=30)
    await user.should_see(marker=f"tenant-{TENANT}-bar-vms")
    await user.should_see("1 of 2")  # VNets: the one declared of a quota of 2
    await user.should_see("Grants: none (plain shared VMs only)")

    user.find(marker=f"tenant-edit-{TENANT}").click()
    await user.should_see("Save quotas", retries=30)
    vnets = user.find(kind=ui.number, marker="quota-vnets").elements.pop()
    vnets.value = 0  # below the one VNet it holds
    user.find(marker="tenant-save-quotas").click()
    await user.should_see("new allocations of these are refused", retries=30)
    await user.should_see(marker=f"tenant-{TENANT}-over", retries=30)
    with node.http() as api:
        assert api.get(f"/api/v1/tenants/{TENANT}").json()["over"] == ["vnets"]

    user.find(kind=ui.input, marker="grant-pci_devices").elements.pop().value = "not-pci"
    user.find(marker="tenant-save-grants").click()
    await user.should_see("[invalid_pci_address]", retries=30)
    user.find(kind=ui.input, marker="grant-pci_devices").elements.pop().value = ""
    user.find(kind=ui.number, marker="grant-pinned_cores").elements.pop().value = 2
    user.find(marker="tenant-save-grants").click()
    await user.should_see("Grants saved.", retries=30)
    vnets.value = 2
    user.find(marker="tenant-save-quotas").click()
    await user.should_see("Quotas saved.", retries=30)
    user.find("Close").click()

    user.find(kind=ui.input, marker="tenant-new-name").elements.pop().value = "bad name"
    user.find(marker="tenant-create").click()
    await user.should_see("[invalid_name]", retries=30)
    user.find(kind=ui.input, marker="tenant-new-name").elements.pop().value = "globex"
    user.find(marker="tenant-create").click()
    await user.should_see(marker="tenant-globex", retries=30)
    with node.http() as api:
        api.put(f"/api/v1/tenants/{TENANT}/grants", json={"pinned_cores": 0})


async def test_tenant_admin_gets_no_tenants_page_but_its_own_card(tenant_admin: User) -> None:
    user = tenant_admin
    await user.should_see(f"Your tenant: {TENANT}")
    await user.should_see(marker="dash-tenant-bar-vcpus", retries=30)
    await user.should_see("0 of 8")  # vCPUs
    await user.should_not_see(marker="tenant-list")
    nav = [link.text for link in user.find(kind=ui.link).elements]
    assert "Tenants" not in nav and "VMs" in nav
    await user.open("/tenants")
    await user.should_see(marker="tenants-refused")
    await user.should_not_see(marker="tenant-create")


async def test_wizard_offers_a_tenant_admin_only_what_it_may_use(tenant_admin: User) -> None:
    user = tenant_admin
    await user.open("/vms")
    user.find("Create VM").click()
    await user.should_see("Create a VM", retries=30)
    role = user.find(kind=ui.select, marker="create-role").elements.pop()
    assert list(role.options) == ["other", "b2b"]
    tenant = user.find(kind=ui.select, marker="create-tenant").elements.pop()
    assert tenant.options == {TENANT: TENANT} and not tenant.enabled
    for marker in ("create-pinned", "create-isolated", "create-hugepages", "create-numa"):
        await user.should_not_see(marker=marker)
    gpu = user.find(kind=ui.select, marker="create-gpu").elements.pop()
    assert gpu.options == {"": "none", "1g.10gb": "1g.10gb"}
    vnet = user.find(kind=ui.select, marker="create-vnet").elements.pop()
    assert vnet.options == {"": "none", "llm": "llm"}
