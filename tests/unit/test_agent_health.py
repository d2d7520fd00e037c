"""The guest-agent health check on the libvirt test driver, which cannot run agent
commands: the backend says so, the prober reports the replica unhealthy with that
reason, and a role asking for the check is refused before anything is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.backends.vm.libvirt_backend import TEST_URI, LibvirtBackend
from appliance.backends.vm.protocol import AgentUnsupported
from appliance.catalog.model import CatalogEntry, ImageRef
from appliance.domain.vm_spec import Role
from appliance.services.service_health import HealthProber, describe
from appliance.services.service_templates import NodeFacts, check_role_on_node
from tests.support.appliance import make_config
from towerbox_core.api.services import HealthCheck, RoleTemplate

AGENT = HealthCheck(kind="agent")


@pytest.fixture
def backend() -> LibvirtBackend:
    return LibvirtBackend(TEST_URI, "test")


def _running_domain(backend: LibvirtBackend) -> str:
    # The test driver starts with one running domain, "test".
    found = [d for d in backend.list_domains() if d.name == "test"]
    assert found and found[0].state.value == "running"
    return found[0].uuid


def test_the_test_driver_says_it_cannot_ping_guest_agents(backend: LibvirtBackend) -> None:
    assert backend.guest_agent_unsupported is not None
    assert "test driver" in backend.guest_agent_unsupported
    with pytest.raises(AgentUnsupported) as err:
        backend.ping_guest_agent(_running_domain(backend), 1)
    assert (err.value.code, err.value.status) == ("agent_unsupported", 501)


def test_the_prober_never_fakes_agent_health(backend: LibvirtBackend, tmp_path: Path) -> None:
    prober = HealthProber(make_config(tmp_path), backend)
    probe = prober.probe(_running_domain(backend), AGENT, 0.5)
    assert not probe.healthy
    assert probe.state == "running"
    assert probe.detail.startswith("guest agent: ") and "test driver" in probe.detail
    assert describe(AGENT) == "guest agent answers a ping"


def _demo_entry() -> CatalogEntry:
    return CatalogEntry(
        name="demo",
        description="",
        version="1",
        role=Role.OTHER,
        image=ImageRef(kind="kernel", file="vmlinuz"),
        default_spec={},
        cloud_init_template=None,
        source_file="demo.toml",
    )


def test_a_role_with_the_agent_check_is_refused_where_pings_cannot_run() -> None:
    role = RoleTemplate(name="a", catalog="demo", health=AGENT)
    catalog = {"demo": _demo_entry()}
    refusing = NodeFacts(catalog, frozenset, lambda _t, _n: True, "no agents here")
    with pytest.raises(AgentUnsupported) as err:
        check_role_on_node(role, "acme", refusing, "roles[0]")
    assert err.value.extra["field"] == "roles[0].health.kind"
    assert "no agents here" in err.value.message
    # Where the backend can ping agents the same role passes.
    check_role_on_node(role, "acme", NodeFacts(catalog, frozenset, lambda _t, _n: True), "r")
