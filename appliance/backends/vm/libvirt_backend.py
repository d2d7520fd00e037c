"""VmBackend over libvirt-python, for any URI.

libvirtError stops here: it becomes a TowerboxError with a stable code. Every call is
blocking; callers run them in worker threads. One connection is shared by all
threads (libvirt connections are thread-safe) and reopened if it dies.
"""

from __future__ import annotations

import functools
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import libvirt
import libvirt_qemu

from appliance.backends.vm.domain_xml import OWNER_NS, read_owner
from appliance.backends.vm.libvirt_link import STATES, Link, translate
from appliance.backends.vm.libvirt_stats import StatsReader
from appliance.backends.vm.neighbours import addresses_for, domain_macs, read_table
from appliance.backends.vm.protocol import (
    STATS_DEADLINE_S,
    AgentUnsupported,
    DomainState,
    DomainStats,
    DomainStatus,
)
from appliance.backends.vm.xml_parts import compact_cpuset
from towerbox_core.errors import BackendError, Conflict

log = logging.getLogger(__name__)

SYSTEM_URI = "qemu:///system"
TEST_URI = "test:///default"

_T = TypeVar("_T")

GUEST_PING = '{"execute":"guest-ping"}'


# libvirt prints every error to stderr by default; we raise our own instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def _crashed(state: int, reason: int) -> bool:
    return bool(
        state == libvirt.VIR_DOMAIN_CRASHED
        or (state == libvirt.VIR_DOMAIN_SHUTOFF and reason == libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)
    )


class LibvirtBackend:
    def __init__(self, uri: str, virt_type: str) -> None:
        self._uri = uri
        self._virt_type = virt_type
        self._link = Link(uri)
        self._owner_cache: dict[str, str | None] = {}
        self._stats = StatsReader(uri, self._link, self.simulated)
        self._link.get()

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def simulated(self) -> bool:
        return self._uri.startswith("test:")

    @property
    def virt_type(self) -> str:
        return self._virt_type

    def describe(self) -> str:
        if self.simulated:
            return f"{self._uri} (simulated)"
        mode = "qemu emulation" if self._virt_type == "qemu" else self._virt_type
        return f"{self._uri} ({mode})"

    def _call(
        self, what: str, fn: Callable[[libvirt.virConnect], _T], link: Link | None = None
    ) -> _T:
        conn = (link or self._link).get()
        try:
            return fn(conn)
        except libvirt.libvirtError as err:
            raise translate(err, what) from err

    def _dom(self, conn: libvirt.virConnect, uuid: str) -> libvirt.virDomain:
        return conn.lookupByUUIDString(uuid)

    def define(self, xml: str) -> None:
        self._call("define domain", lambda c: c.defineXML(xml))

    def undefine(self, uuid: str) -> None:
        def go(c: libvirt.virConnect) -> None:
            dom = self._dom(c, uuid)
            flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
            try:
                dom.undefineFlags(flags)
            except libvirt.libvirtError:
                dom.undefine()  # drivers without the flags (the test driver)

        self._call(f"undefine {uuid}", go)
        self._owner_cache.pop(uuid, None)

    def start(self, uuid: str) -> None:
        self._call(f"start {uuid}", lambda c: self._active(c, uuid, False).create())

    def shutdown(self, uuid: str) -> None:
        self._call(f"shut down {uuid}", lambda c: self._active(c, uuid, True).shutdown())

    def destroy(self, uuid: str) -> None:
        self._call(f"force stop {uuid}", lambda c: self._active(c, uuid, True).destroy())

    def reboot(self, uuid: str) -> None:
        self._call(f"reboot {uuid}", lambda c: self._active(c, uuid, True).reboot())

    def _active(self, conn: libvirt.virConnect, uuid: str, wanted: bool) -> libvirt.virDomain:
        """The domain, if it is (or is not) running; else the conflict QEMU reports.

        Drivers word this differently (the test driver calls it an internal error),
        so the check is ours and every backend refuses alike.
        """
        dom = self._dom(conn, uuid)
        if bool(dom.isActive()) != wanted:
            state = "not running" if wanted else "already running"
            raise Conflict(f"domain {dom.name()} is {state}", code="domain_state_conflict")
        return dom

    def set_autostart(self, uuid: str, enabled: bool) -> None:
        self._call(f"autostart {uuid}", lambda c: self._dom(c, uuid).setAutostart(int(enabled)))

    def pin_vcpus(self, uuid: str, cpus: tuple[int, ...]) -> None:
        def go(c: libvirt.virConnect) -> None:
            host_cpus = c.getCPUMap()[0]
            cpumap = tuple(i in cpus for i in range(host_cpus))
            if not any(cpumap):
                raise Conflict(f"no usable CPU among {cpus}", code="no_cpus_to_pin")
            dom = self._dom(c, uuid)
            if not dom.isActive():
                # The saved definition is all there is: rewrite its cpuset (some
                # drivers refuse pinning calls on a stopped domain).
                root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))  # noqa: S314
                vcpu_el = root.find("vcpu")
                if vcpu_el is not None:
                    vcpu_el.set("cpuset", compact_cpuset(cpus))
                    c.defineXML(ET.tostring(root, encoding="unicode"))
                return
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_AFFECT_LIVE
            for vcpu in range(dom.info()[3]):
                _with_flags(functools.partial(dom.pinVcpuFlags, vcpu, cpumap), flags)
            _with_flags(functools.partial(dom.pinEmulator, cpumap), flags)

        self._call(f"pin vCPUs of {uuid}", go)

    def status(self, uuid: str) -> DomainStatus | None:
        def go(c: libvirt.virConnect) -> DomainStatus | None:
            try:
                dom = self._dom(c, uuid)
                return self._status(dom)
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise

        return self._call(f"status of {uuid}", go)

    def list_domains(self) -> list[DomainStatus]:
        def go(c: libvirt.virConnect) -> list[DomainStatus]:
            result = []
            for dom in c.listAllDomains():
                try:
                    result.append(self._status(dom))
                except libvirt.libvirtError as err:
                    # A domain undefined between the listing and this call: skip it.
                    if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            return result

        return self._call("list domains", go)

    def _status(self, dom: libvirt.virDomain) -> DomainStatus:
        state, reason = dom.state()
        uuid = dom.UUIDString()
        return DomainStatus(
            uuid=uuid,
            name=dom.name(),
            state=STATES.get(state, DomainState.UNKNOWN),
            owner_node=self._owner(dom, uuid),
            crashed=_crashed(state, reason),
        )

    def _owner(self, dom: libvirt.virDomain, uuid: str) -> str | None:
        # A domain's owner never changes while its UUID lives: ask libvirt once.
        if uuid in self._owner_cache:
            return self._owner_cache[uuid]
        try:
            meta = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, OWNER_NS)
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                raise
            meta = None
        parsed = read_owner(meta) if meta else None
        owner = parsed.node if parsed else None
        self._owner_cache[uuid] = owner
        return owner

    def addresses(self, uuid: str) -> list[str]:
        """The guest's IP addresses that libvirt knows from DHCP leases or the host's
        ARP table, else what the host's ARP table says of its NICs' MACs (libvirt 9.0's
        ARP source fails: see ``neighbours``); empty when none is known (no lease, no
        traffic yet, no NIC)."""

        def go(c: libvirt.virConnect) -> list[str]:
            dom = self._dom(c, uuid)
            for source in (
                libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
                libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
            ):
                try:
                    found = dom.interfaceAddresses(source)
                except libvirt.libvirtError as err:
                    if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                        raise
                    continue  # a source this driver or domain does not support
                addrs = [a["addr"] for nic in found.values() for a in nic.get("addrs") or ()]
                if addrs:
                    return addrs
            # The test driver's domains have no guest on any link, and a remote
            # libvirt's guests are in another host's table.
            if self.simulated or urlsplit(self._uri).netloc:
                return []
            return addresses_for(domain_macs(dom.XMLDesc()), read_table())

        return self._call(f"addresses of {uuid}", go)

    @property
    def guest_agent_unsupported(self) -> str | None:
        if self.simulated:
            return f"the libvirt test driver ({self._uri}) cannot run guest-agent commands"
        return None

    def ping_guest_agent(self, uuid: str, timeout_s: float) -> None:
        reason = self.guest_agent_unsupported
        if reason is not None:
            raise AgentUnsupported(reason)
        # libvirt counts whole seconds, and 0 would mean "do not wait for the answer".
        seconds = max(1, math.ceil(timeout_s))

        def go(c: libvirt.virConnect) -> None:
            libvirt_qemu.qemuAgentCommand(self._dom(c, uuid), GUEST_PING, seconds, 0)

        try:
            self._call(f"guest-agent ping of {uuid}", go)
        except BackendError as err:
            raise _agent_error(err) from err

    def bulk_stats(self, deadline_s: float = STATS_DEADLINE_S) -> list[DomainStats]:
        return self._stats.bulk_stats(deadline_s)

    @property
    def stranded_stats_calls(self) -> int:
        """Stats calls given up on that still wait on a domain's QEMU."""
        return self._stats.stranded

    def stall(self, uuid: str, stalled: bool = True) -> None:
        """Simulated backend only: the domain's QEMU stops (or resumes) answering, as a
        SIGSTOPped (SIGCONTed) one does."""
        self._stats.stall(uuid, stalled)


def _agent_error(err: BackendError) -> BackendError:
    """A failed ping, with a code that says which way it failed."""
    libvirt_code = err.extra.get("libvirt_code")
    if libvirt_code == libvirt.VIR_ERR_AGENT_UNRESPONSIVE:
        # "not connected" (nothing opened the port in the guest) or no answer in time
        code = "agent_unresponsive"
    elif libvirt_code == libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED:
        code = "agent_not_configured"  # the domain has no guest-agent channel
    else:
        return err
    return BackendError(err.message, code=code)


def _with_flags(call: Callable[[int], object], flags: int) -> None:
    """Call with live+config flags; drivers that refuse them (the test driver) get 0."""
    try:
        call(flags)
    except libvirt.libvirtError as err:
        if err.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
            raise
        call(0)


def choose_uri(configured: str) -> tuple[str, str | None]:
    """Resolve "auto": the system daemon when it answers, else the test driver.

    Returns the URI and, when it fell back, why (for the log and /healthz).
    """
    if configured != "auto":
        return configured, None
    try:
        libvirt.open(SYSTEM_URI).close()
    except libvirt.libvirtError as err:
        return TEST_URI, f"{SYSTEM_URI} unavailable: {err.get_error_message()}"
    return SYSTEM_URI, None


def choose_virt_type(configured: str, uri: str, hw_virt: bool, kvm_device: bool) -> str:
    if configured != "auto":
        return configured
    if uri.startswith("test:"):
        return "test"
    return "kvm" if hw_virt and kvm_device else "qemu"
