"""A monitor sweep tells the event stream what it saw change (a VM stopped outside
Towerbox), once, to the VM's tenant and the node's viewers only; and every sweep
tells everyone that it swept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.context import Appliance
from appliance.services.events import SNAPSHOT, SWEEP, Event
from appliance.store.models import Vm
from tests.support.tenancy import root_principal, tenant_node
from towerbox_core.api.vms import VmCreateRequest


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from tenant_node(tmp_path)


def _drain(queue: asyncio.Queue[Event | None]) -> list[Event]:
    out = []
    while not queue.empty():
        event = queue.get_nowait()
        assert event is not None
        out.append(event)
    return out


def test_a_sweep_tells_the_states_it_saw_change_to_those_who_may_see_them(
    appliance: Appliance,
) -> None:
    root = root_principal(appliance)
    for name, tenant in (("a-vm", "acme"), ("b-vm", "beta")):
        spec = {"tenant": tenant}
        appliance.vms.create(root, VmCreateRequest(name=name, appliance="demo", spec=spec))
        appliance.vms.start(root, name)
    ids = {str(vm.name): str(vm.id) for vm in Vm.select()}

    async def scenario() -> None:
        hub = appliance.events
        acme = hub.subscribe(lambda tenant: tenant == "acme")
        admin = hub.subscribe(lambda _tenant: True)
        await asyncio.to_thread(appliance.monitor_job)
        await asyncio.sleep(0.05)
        # What the first sweep recorded is not the point here.
        _drain(acme.queue)
        _drain(admin.queue)

        # Both stop behind Towerbox's back: only a sweep can see it.
        for name in ("a-vm", "b-vm"):
            appliance.backend.destroy(ids[name])
        await asyncio.to_thread(appliance.monitor_job)
        await asyncio.sleep(0.05)
        heard = [e for e in _drain(acme.queue) if e.type == SNAPSHOT]
        assert [e.data["vms"] for e in heard] == [
            [{"id": ids["a-vm"], "name": "a-vm", "state": "shutoff"}]
        ]
        seen = {
            vm["name"] for e in _drain(admin.queue) if e.type == SNAPSHOT for vm in e.data["vms"]
        }
        assert seen == {"a-vm", "b-vm"}

        # Nothing changed since: a sweep tells no state, only that it swept, and that
        # once to everyone, a tenant whose objects did not change included.
        _drain(acme.queue)
        await asyncio.to_thread(appliance.monitor_job)
        await asyncio.sleep(0.05)
        quiet = _drain(admin.queue)
        assert not [e for e in quiet if e.type == SNAPSHOT]
        assert [e.type for e in quiet] == [SWEEP]
        assert isinstance(quiet[0].data["at"], float)
        assert [e.type for e in _drain(acme.queue)] == [SWEEP]

    asyncio.run(scenario())
