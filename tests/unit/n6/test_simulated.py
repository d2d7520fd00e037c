"""The simulated backend and how the appliance picks a backend."""

from __future__ import annotations

import logging

import pytest

from tests.unit.n6.factories import trunk, vnet
from towerbox_core.errors import BackendError, BackendUnavailable
from upf_bridge.backends import backend_for, ovsdb, probe
from upf_bridge.backends.simulated import SimulatedBackend
from upf_bridge.model import N6Config, TrunkKind, validate


def test_simulated_apply_is_all_or_nothing() -> None:
    backend = SimulatedBackend()
    first = validate([trunk(ports=("eth1",))], [vnet()])
    backend.apply(first)
    backend.fail_on = lambda step: "rule" in str(step)
    with pytest.raises(BackendError) as err:
        backend.apply(validate([trunk(ports=("eth1",))], [vnet(), vnet("beta", "b", 200, 2)]))
    assert err.value.code == "simulated_failure"
    backend.fail_on = None
    assert backend.plan(first).empty
    assert set(backend.counters()) == {"acme/a"}


def test_simulated_backends_only_take_their_kind() -> None:
    config = validate(
        [trunk("n6"), trunk("eth1", TrunkKind.LINUX)],
        [vnet(), vnet("beta", "b", 200, 2, trunk="eth1")],
    )
    linux = backend_for(TrunkKind.LINUX, simulated=True)
    made = linux.apply(config)
    assert any(line.startswith("+ vlan eth1.200") for line in made.lines())
    assert not any("acme" in line for line in made.lines())
    assert "simulated" in linux.describe()
    linux.apply(N6Config())
    assert linux.counters() == {}


def test_probe_falls_back_to_the_simulated_backend_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(args: list[str]) -> str:
        raise BackendUnavailable("Open vSwitch is not running", code="ovs_unavailable")

    monkeypatch.setattr(ovsdb, "vsctl", down)
    with caplog.at_level(logging.INFO):
        backend = probe(TrunkKind.OVS)
    assert isinstance(backend, SimulatedBackend)
    assert "simulated ovs" in caplog.text
    assert "Open vSwitch is not running" in caplog.text
