"""The N6 page's dialogs in NiceGUI's User simulation against a real appliance process
(simulated N6 backend): trunks and VNets declared, refused at the field, edited, removed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing.user import User

from tests.ui.conftest import log_in
from tests.ui.stack import Appliance
from ui.pages.n6_forms import NOT_APPLIED

pytestmark = pytest.mark.anyio

TENANT = "n6co"


def element(user: User, marker: str) -> Any:
    found = user.find(marker=marker).elements
    assert len(found) == 1, f"{marker}: {len(found)} elements"
    return found.pop()


def declared_vnets(node: Appliance) -> dict[str, dict[str, Any]]:
    with node.http() as api:
        return {f"{v['tenant']}/{v['name']}": v for v in api.get("/api/v1/n6/vnets").json()}


async def eventually(check: Callable[[], bool]) -> None:
    for _ in range(100):
        if check():
            return
        await asyncio.sleep(0.1)
    assert check()


async def open_n6(user: User, node: Appliance) -> None:
    with node.http() as api:
        assert api.post("/api/v1/tenants", json={"name": TENANT}).status_code in (201, 409)
    await log_in(user, node.password)
    await user.open("/n6")
    await user.should_see(marker="n6-new-trunk", retries=30)


async def test_trunk_refused_at_the_field_then_declared_edited_removed(
    user: User, node: Appliance
) -> None:
    await open_n6(user, node)
    user.find(marker="n6-new-trunk").click()
    await user.should_see("New N6 trunk", retries=20)
    element(user, "n6-trunk-name").value = "br-ui"
    element(user, "n6-trunk-ports").value = "ens5f0, tbxnope"
    user.find(marker="n6-trunk-save").click()
    await user.should_see("[invalid_interface_name]", retries=30)
    # At the ports input; the rest as typed, nothing declared.
    assert "[invalid_interface_name]" in element(user, "n6-trunk-ports").error
    assert element(user, "n6-trunk-name").error is None
    assert element(user, "n6-trunk-name").value == "br-ui"
    with node.http() as api:
        assert "br-ui" not in [t["name"] for t in api.get("/api/v1/n6/trunks").json()]

    element(user, "n6-trunk-ports").value = "ens5f0"
    element(user, "n6-trunk-datapath_type").value = "netdev"
    user.find(marker="n6-trunk-save").click()
    await user.should_see("br-ui (ovs) · ports ens5f0 · datapath netdev", retries=30)
    assert "Apply" in element(user, "n6-pending").text
    await user.should_see(marker="n6-change", content="br-ui", retries=30)  # Plan shows it

    user.find(marker="n6-edit-trunk-br-ui").click()
    await user.should_see("Edit trunk br-ui", retries=20)
    assert not element(user, "n6-trunk-name").enabled  # a new name is a new trunk
    element(user, "n6-trunk-ports").value = "ens5f0, ens5f1"
    user.find(marker="n6-trunk-save").click()
    await user.should_see("br-ui (ovs) · ports ens5f0, ens5f1 · datapath netdev", retries=30)

    # An OVS trunk turned into a Linux NIC: the ports and datapath inputs hide and are
    # not sent (the appliance would refuse ports on a NIC).
    user.find(marker="n6-edit-trunk-br-ui").click()
    await user.should_see("Edit trunk br-ui", retries=20)
    element(user, "n6-trunk-kind").value = "linux"
    await user.should_not_see(marker="n6-trunk-ports")
    user.find(marker="n6-trunk-save").click()
    await user.should_see("br-ui (linux) · ports -", retries=30)
    with node.http() as api:
        (trunk,) = [t for t in api.get("/api/v1/n6/trunks").json() if t["name"] == "br-ui"]
    assert trunk == {"name": "br-ui", "kind": "linux"}

    user.find(marker="n6-delete-trunk-br-ui").click()
    await user.should_see("Remove trunk br-ui?", retries=20)
    user.find(marker="confirm-yes").click()
    await user.should_see("Removed trunk br-ui from the declaration", retries=30)
    with node.http() as api:
        assert "br-ui" not in [t["name"] for t in api.get("/api/v1/n6/trunks").json()]


async def test_vnet_refusals_at_their_fields_then_created_edited_removed(
    user: User, node: Appliance
) -> None:
    with node.http() as api:
        made = api.put("/api/v1/n6/trunks/br-vn", json={"kind": "ovs", "ports": ["ens6f0"]})
        assert made.is_success, made.text
    await open_n6(user, node)
    user.find(marker="n6-new-vnet").click()
    await user.should_see("New tenant VNet", retries=20)
    element(user, "n6-vnet-tenant").value = TENANT
    element(user, "n6-vnet-name").value = "video"
    element(user, "n6-vnet-trunk").value = "br-vn"
    element(user, "n6-vnet-vlan").value = 5000
    element(user, "n6-vnet-subnet").value = "10.140.0.0/24"
    element(user, "n6-vnet-gateway").value = "10.141.0.1"
    element(user, "n6-vnet-dnns").value = "video, internet"
    element(user, "n6-vnet-ue_pools").value = "10.142.0.0/16"
    user.find(marker="n6-vnet-save").click()
    await user.should_see("[invalid_vlan]", retries=30)
    assert "4094" in element(user, "n6-vnet-vlan").error  # says the valid range
    assert element(user, "n6-vnet-subnet").value == "10.140.0.0/24"  # kept as typed

    element(user, "n6-vnet-vlan").value = 340
    user.find(marker="n6-vnet-save").click()
    await user.should_see("[gateway_outside_subnet]", retries=30)
    assert element(user, "n6-vnet-vlan").error is None
    assert "10.140.0.1" in element(user, "n6-vnet-gateway").error  # the first host address
    assert f"{TENANT}/video" not in declared_vnets(node)

    element(user, "n6-vnet-gateway").value = "10.140.0.1"
    user.find(marker="n6-vnet-save").click()
    await user.should_see(f"Tenant {TENANT}", retries=30)
    vnet = declared_vnets(node)[f"{TENANT}/video"]
    assert (vnet["vlan"], vnet["dnns"], vnet["ue_pools"]) == (
        340,
        ["video", "internet"],
        ["10.142.0.0/16"],
    )
    table = element(user, f"n6-tenant-{TENANT}")
    assert table.rows[0]["applied"] == "no"
    await user.should_see(marker="n6-change", content="VLAN 340", retries=30)

    # A second VNet on the same VLAN: refused at the VLAN, though the API names no field.
    user.find(marker="n6-new-vnet").click()
    await user.should_see("New tenant VNet", retries=20)
    element(user, "n6-vnet-tenant").value = TENANT
    element(user, "n6-vnet-name").value = "cams"
    element(user, "n6-vnet-trunk").value = "br-vn"
    element(user, "n6-vnet-vlan").value = 340
    element(user, "n6-vnet-subnet").value = "10.150.0.0/24"
    element(user, "n6-vnet-gateway").value = "10.150.0.1"
    user.find(marker="n6-vnet-save").click()
    await user.should_see("[vlan_taken]", retries=30)
    assert "[vlan_taken]" in element(user, "n6-vnet-vlan").error
    user.find("Cancel").click()

    user.find(marker=f"n6-edit-vnet-{TENANT}-video").click()
    await user.should_see(f"Edit VNet {TENANT}/video", retries=20)
    assert not element(user, "n6-vnet-name").enabled
    element(user, "n6-vnet-dnns").value = "video"
    element(user, "n6-vnet-ue_pools").value = "10.142.0.0/16, 10.143.0.0/16"
    user.find(marker="n6-vnet-save").click()
    await eventually(lambda: user.notify.messages.count(f"VNet {TENANT}/video {NOT_APPLIED}") == 2)
    vnet = declared_vnets(node)[f"{TENANT}/video"]
    assert (vnet["dnns"], vnet["ue_pools"]) == (["video"], ["10.142.0.0/16", "10.143.0.0/16"])
    # The page redraws its tables with what the appliance now declares.
    pools = "10.142.0.0/16, 10.143.0.0/16"
    await eventually(lambda: element(user, f"n6-tenant-{TENANT}").rows[0]["ue_pools"] == pools)

    user.find(marker=f"n6-delete-vnet-{TENANT}-video").click()
    await user.should_see(f"Remove VNet {TENANT}/video?", retries=20)
    user.find(marker="confirm-yes").click()
    await user.should_see(f"Removed VNet {TENANT}/video from the declaration", retries=30)
    assert f"{TENANT}/video" not in declared_vnets(node)


async def test_tenant_admin_gets_no_declaring_buttons(user: User, node: Appliance) -> None:
    with node.http() as api:
        api.post("/api/v1/tenants", json={"name": TENANT})
        body = {"username": "n6co-admin", "password": "n6co-pass-123", "role": "tenant-admin"}
        made = api.post("/api/v1/users", json={**body, "tenant": TENANT})
        assert made.status_code in (201, 409), made.text
    await user.open("/login")
    user.find("Username").type("n6co-admin")
    user.find("Password").type("n6co-pass-123")
    user.find("Log in").click()
    await user.should_see(marker="dash-vm-total", retries=50)
    await user.open("/n6")
    await user.should_see("So do declaring and editing trunks and VNets.")
    await user.should_not_see(marker="n6-new-vnet")
    await user.should_not_see(kind=ui.button, content="New trunk")
