"""What every NetBackend does, written once: the simulated ones and real Open vSwitch."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network

import pytest

from tests.integration.n6.conftest import CONTRACT_RANGES, OCTET, OWNER, TAG
from towerbox_core.errors import TowerboxError
from upf_bridge.backends.base import NetBackend
from upf_bridge.backends.ovs import OvsBackend
from upf_bridge.backends.reconcile import Reconciler, Step
from upf_bridge.backends.simulated import SimulatedBackend
from upf_bridge.model import N6Config, Trunk, TrunkKind, VNet, validate

BRIDGE = f"nc{TAG}"


def _vnet(i: int) -> VNet:
    return VNet(
        tenant=f"tenant{i}",
        name="svc",
        trunk=BRIDGE,
        vlan=300 + i,
        subnet=IPv4Network(f"10.{OCTET}.{40 + i}.0/24"),
        gateway=IPv4Address(f"10.{OCTET}.{40 + i}.1"),
        ue_pools=(IPv4Network(f"10.{OCTET}.{60 + i}.0/24"),),
    )


def _config(kind: TrunkKind, *indexes: int) -> N6Config:
    trunk = Trunk(BRIDGE, kind, datapath_type="netdev")
    return validate([trunk], [_vnet(i) for i in indexes])


@pytest.fixture(params=["simulated-ovs", "simulated-linux", "ovs"])
def backend(request: pytest.FixtureRequest) -> Iterator[Reconciler[object]]:
    chosen: Reconciler[object]
    if request.param == "ovs":
        request.getfixturevalue("ovs")
        chosen = OvsBackend(owner=f"{OWNER}-c", ranges=CONTRACT_RANGES)  # type: ignore[assignment]
    else:
        kind = TrunkKind.OVS if request.param == "simulated-ovs" else TrunkKind.LINUX
        chosen = SimulatedBackend(kind=kind, owner=OWNER)  # type: ignore[assignment]
    try:
        yield chosen
    finally:
        chosen.apply(N6Config())


def _kind(backend: NetBackend) -> TrunkKind:
    return backend.kind


def test_apply_from_nothing_creates_then_reapply_is_empty(backend: NetBackend) -> None:
    config = _config(_kind(backend), 1, 2)
    made = backend.apply(config)
    assert made.create
    assert not made.update
    assert not made.delete
    assert backend.plan(config).empty
    assert backend.apply(config).empty


def test_dry_run_changes_nothing(backend: NetBackend) -> None:
    config = _config(_kind(backend), 1)
    planned = backend.plan(config)
    assert backend.apply(config, dry_run=True) == planned
    assert backend.plan(config) == planned


def test_removing_a_vnet_only_deletes_and_its_counters_go(backend: NetBackend) -> None:
    backend.apply(_config(_kind(backend), 1, 2))
    assert set(backend.counters()) == {"tenant1/svc", "tenant2/svc"}
    smaller = _config(_kind(backend), 1)
    removed = backend.apply(smaller)
    assert removed.delete
    assert not removed.create
    assert backend.plan(smaller).empty
    assert set(backend.counters()) == {"tenant1/svc"}


def test_a_failing_step_rolls_everything_back(
    backend: Reconciler[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _config(backend.kind, 1)
    backend.apply(before)
    after = _config(backend.kind, 2, 3)
    steps = len(backend._steps(backend.plan(after)))
    real = backend._perform
    done: list[Step] = []

    def fail_halfway(step: Step) -> None:
        if len(done) == steps // 2:
            done.append(step)
            raise OSError("the kernel said no")
        done.append(step)
        real(step)

    monkeypatch.setattr(backend, "_perform", fail_halfway)
    with pytest.raises(TowerboxError) as err:
        backend.apply(after)
    assert err.value.code == "apply_failed"
    monkeypatch.undo()
    assert backend.plan(before).empty


def test_attachment_names_the_bridge_a_vm_joins(backend: NetBackend) -> None:
    config = _config(_kind(backend), 1)
    backend.apply(config)
    where = backend.attachment(config.vnets[0])
    assert where.vnet == "tenant1/svc"
    if _kind(backend) == TrunkKind.OVS:
        assert (where.kind, where.bridge, where.vlan) == ("ovs", BRIDGE, 301)
    else:
        assert where.kind == "bridge"
        assert where.bridge.startswith("tbxb301-")
