"""One contract for VmBackend, run on the simulated twin and on real libvirtd + QEMU."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from appliance.backends.vm.libvirt_backend import SYSTEM_URI, TEST_URI, LibvirtBackend
from appliance.backends.vm.protocol import AgentUnsupported, DomainState
from towerbox_core.errors import BackendError, Conflict, NotFound, TowerboxError

NODE = f"contract-{os.getpid()}"


AGENT_CHANNEL = (
    "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
)


def _tiny_xml(virt_type: str, name: str, vm_id: str, workdir: Path, extra: str = "") -> str:
    meta = (
        f"<metadata><tbx:vm xmlns:tbx='urn:towerbox:vm:1' node='{NODE}' vm-id='{vm_id}' "
        "role='other'/></metadata>"
    )
    if virt_type == "test":
        return (
            f"<domain type='test'><name>{name}</name><uuid>{vm_id}</uuid>{meta}"
            "<memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"
        )
    # No kernel at all: QEMU sits in its firmware, which is all a contract needs.
    return (
        f"<domain type='{virt_type}'><name>{name}</name><uuid>{vm_id}</uuid>{meta}"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>"
        "<on_poweroff>destroy</on_poweroff><devices><memballoon model='virtio'/>"
        f"<serial type='file'><source path='{workdir}/{name}.log'/></serial>"
        f"{extra}</devices></domain>"
    )


def _backends() -> list[object]:
    params: list[object] = [pytest.param(TEST_URI, id="simulated")]
    params.append(pytest.param(SYSTEM_URI, id="qemu-system", marks=pytest.mark.libvirtd))
    return params


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> LibvirtBackend:
    uri = request.param
    if uri == SYSTEM_URI:
        try:
            libvirt.open(SYSTEM_URI).close()
        except libvirt.libvirtError as err:
            if os.environ.get("CI"):
                pytest.fail(f"CI must run the real libvirt contract: {err}")
            pytest.skip(f"{SYSTEM_URI} unavailable: {err}")
        return LibvirtBackend(SYSTEM_URI, "qemu")
    return LibvirtBackend(TEST_URI, "test")


@pytest.fixture
def domain(backend: LibvirtBackend) -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="towerbox-contract-", dir="/var/tmp"))
    workdir.chmod(0o755)
    vm_id = str(uuid.uuid4())
    backend.define(_tiny_xml(backend.virt_type, f"contract-{vm_id[:8]}", vm_id, workdir))
    yield vm_id
    status = backend.status(vm_id)
    if status is not None:
        if status.state is not DomainState.SHUTOFF:
            backend.destroy(vm_id)
        backend.undefine(vm_id)
    for f in workdir.iterdir():
        f.unlink()
    workdir.rmdir()


def _wait_state(backend: LibvirtBackend, vm_id: str, state: DomainState) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        status = backend.status(vm_id)
        if status is not None and status.state is state:
            return
        time.sleep(0.1)
    raise AssertionError(f"{vm_id} never reached {state}")


def test_defined_domain_is_listed_as_ours(backend: LibvirtBackend, domain: str) -> None:
    status = backend.status(domain)
    assert status is not None
    assert status.state is DomainState.SHUTOFF
    assert status.owner_node == NODE
    assert domain in {d.uuid for d in backend.list_domains()}


def test_start_stats_destroy(backend: LibvirtBackend, domain: str) -> None:
    backend.start(domain)
    _wait_state(backend, domain, DomainState.RUNNING)
    stats = {s.uuid: s for s in backend.bulk_stats()}
    assert stats[domain].state is DomainState.RUNNING
    if not backend.simulated:  # the test driver reports state only
        assert stats[domain].vcpus == 1
        assert stats[domain].memory_kib > 0
    backend.destroy(domain)
    _wait_state(backend, domain, DomainState.SHUTOFF)
    assert backend.status(domain).crashed is False  # type: ignore[union-attr]


def test_starting_a_running_domain_is_a_conflict(backend: LibvirtBackend, domain: str) -> None:
    backend.start(domain)
    with pytest.raises(Conflict) as err:
        backend.start(domain)
    assert err.value.code == "domain_state_conflict"
    backend.destroy(domain)


def test_operations_on_stopped_domains_are_conflicts(backend: LibvirtBackend, domain: str) -> None:
    for op in (backend.destroy, backend.shutdown):
        with pytest.raises(Conflict):
            op(domain)


def test_unknown_domain(backend: LibvirtBackend) -> None:
    missing = str(uuid.uuid4())
    assert backend.status(missing) is None
    with pytest.raises(NotFound) as err:
        backend.start(missing)
    assert err.value.code == "domain_not_found"


def test_bad_xml_is_refused_with_a_code(backend: LibvirtBackend) -> None:
    with pytest.raises(BackendError) as err:
        backend.define("<domain type='nonsense'><name>x</name></domain>")
    assert err.value.code in ("libvirt_rejected_config", "libvirt_error")


def test_foreign_domains_have_no_owner(backend: LibvirtBackend) -> None:
    foreign_id = str(uuid.uuid4())
    xml = _tiny_xml(backend.virt_type, f"foreign-{foreign_id[:8]}", foreign_id, Path("/var/tmp"))
    start, end = xml.index("<metadata>"), xml.index("</metadata>") + len("</metadata>")
    backend.define(xml[:start] + xml[end:])
    try:
        assert backend.status(foreign_id).owner_node is None  # type: ignore[union-attr]
    finally:
        backend.undefine(foreign_id)


def test_pin_vcpus_saved_and_live(backend: LibvirtBackend, domain: str) -> None:
    backend.pin_vcpus(domain, (0,))
    backend.start(domain)
    backend.pin_vcpus(domain, (0,))
    conn = libvirt.open(backend.uri)
    try:
        pins = conn.lookupByUUIDString(domain).vcpuPinInfo(0)
    finally:
        conn.close()
    assert [i for i, on in enumerate(pins[0]) if on] == [0]
    backend.destroy(domain)


def test_a_guest_agent_ping_says_plainly_why_nothing_answered(
    backend: LibvirtBackend, domain: str
) -> None:
    backend.start(domain)
    _wait_state(backend, domain, DomainState.RUNNING)
    if backend.simulated:
        assert backend.guest_agent_unsupported is not None
        with pytest.raises(AgentUnsupported) as unsupported:
            backend.ping_guest_agent(domain, 1)
        assert unsupported.value.status == 501
    else:
        assert backend.guest_agent_unsupported is None
        with pytest.raises(BackendError) as err:  # the domain has no agent channel
            backend.ping_guest_agent(domain, 1)
        assert err.value.code == "agent_not_configured"
    backend.destroy(domain)
    with pytest.raises((Conflict, AgentUnsupported)):  # not running: nothing to ask
        backend.ping_guest_agent(domain, 1)


@pytest.mark.libvirtd
def test_a_guest_agent_nobody_runs_is_not_connected() -> None:
    try:
        backend = LibvirtBackend(SYSTEM_URI, "qemu")
    except TowerboxError as err:
        pytest.skip(f"{SYSTEM_URI} unavailable: {err.message}")
    workdir = Path(tempfile.mkdtemp(prefix="towerbox-contract-", dir="/var/tmp"))
    workdir.chmod(0o755)
    vm_id = str(uuid.uuid4())
    # The channel is there, but the guest (firmware with no OS) never opens its port.
    backend.define(_tiny_xml("qemu", f"contract-{vm_id[:8]}", vm_id, workdir, AGENT_CHANNEL))
    try:
        backend.start(vm_id)
        with pytest.raises(BackendError) as err:
            backend.ping_guest_agent(vm_id, 1)
        assert err.value.code == "agent_unresponsive"
        assert "not connected" in err.value.message
    finally:
        backend.destroy(vm_id)
        backend.undefine(vm_id)
        for f in workdir.iterdir():
            f.unlink()
        workdir.rmdir()
