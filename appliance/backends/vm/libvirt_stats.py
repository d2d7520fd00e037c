"""Every domain's stats for the monitor sweep, never held up by one domain.

A stats call runs on a connection of its own with libvirt's no-wait flag, bounded
by a deadline (``bounded_call``); each domain's figures come with how long a command
has held its QEMU monitor, which is how a QEMU that stopped answering shows.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import libvirt

from appliance.backends.vm.bounded_call import BoundedCalls, SimulatedStalls
from appliance.backends.vm.libvirt_link import STATES, Link, translate
from appliance.backends.vm.protocol import DomainState, DomainStats
from towerbox_core.errors import BackendUnavailable, Conflict

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# A stats call is asked again after a deadline this many times per sweep: once per
# domain that stopped answering since the last sweep, within reason.
_STATS_TRIES = 3
# Only the groups a sample shows: each other group (iothreads, dirty rate, VM
# counters) is one more round trip to every QEMU's monitor, on every sweep.
STATS_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)
# Pass over a domain whose job another call holds rather than wait for it.
STATS_FLAGS = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT


class StatsReader:
    def __init__(self, uri: str, link: Link, simulated: bool) -> None:
        self._uri = uri
        self._link = link
        # Stats calls have a connection of their own, never the API's: see bulk_stats.
        self._stats_link = Link(uri)
        self._calls = BoundedCalls("domain stats")
        self._stalls = SimulatedStalls() if simulated else None

    @property
    def stranded(self) -> int:
        return self._calls.stranded

    def _read(self, what: str, fn: Callable[[libvirt.virConnect], _T], link: Link) -> _T:
        try:
            return fn(link.get())
        except libvirt.libvirtError as err:
            raise translate(err, what) from err

    def bulk_stats(self, deadline_s: float) -> list[DomainStats]:
        # No call may wait on one domain: the no-wait flag passes over a domain whose
        # job another call holds, and a call that still blocks (the first to reach a
        # QEMU that stopped answering) is given up at the deadline and asked again,
        # the stranded call now holding that domain's job. When QEMUs are too slow for
        # every try, the states alone still make a sweep.
        for _ in range(_STATS_TRIES):
            link = self._stats_link
            try:
                stats = self._calls.call(
                    functools.partial(self._read, "domain stats", self._read_stats, link),
                    deadline_s,
                    after_stranded=link.close,
                )
            except BackendUnavailable as err:
                if err.code != "stats_stalled":
                    raise
                log.warning("%s; reading domain states only", err.message)
                break
            if stats is not None:
                return stats
            # The stranded call keeps its connection to itself (it closes when the call
            # returns): libvirt's client runs all calls on a connection through one
            # I/O loop, and one waiting on a silent QEMU holds later ones up at random.
            self._stats_link = Link(self._uri)
            log.warning("domain stats: no answer in %.1f s; asking again", deadline_s)
        return self._read("domain states", self._read_states, self._link)

    def _read_stats(self, conn: libvirt.virConnect) -> list[DomainStats]:
        raw = conn.getAllDomainStats(STATS_GROUPS, STATS_FLAGS)
        if self._stalls is None:
            return [_stats(dom, fields, self._busy_ms(dom)) for dom, fields in raw]
        uuids = [dom.UUIDString() for dom, _ in raw]
        self._stalls.enter(uuids)
        busy = self._stalls.busy()
        return [
            _stats(dom, fields, busy.get(uuid, 0))
            for uuid, (dom, fields) in zip(uuids, raw, strict=True)
        ]

    def _read_states(self, conn: libvirt.virConnect) -> list[DomainStats]:
        """Each domain's state and monitor time without its figures: libvirtd answers
        these from its own records, never by asking QEMU."""
        result = []
        for dom in conn.listAllDomains():
            try:
                state = STATES.get(dom.state()[0], DomainState.UNKNOWN)
                busy_ms = self._busy_ms(dom)
                uuid, name = dom.UUIDString(), dom.name()
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue  # undefined since the listing
                raise
            result.append(DomainStats(uuid, name, state, monitor_busy_ms=busy_ms, partial=True))
        return result

    def _busy_ms(self, dom: libvirt.virDomain) -> int:
        """How long a command has held the domain's QEMU monitor; 0 when it is free."""
        if self._stalls is not None:
            return self._stalls.busy().get(dom.UUIDString(), 0)
        try:
            # Answered from libvirtd's own records: safe while the monitor is stuck.
            state, _details, held_ms = dom.controlInfo()
        except libvirt.libvirtError as err:
            gone = (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID)
            if err.get_error_code() in gone:
                return 0  # undefined or stopped since the stats call
            raise
        return int(held_ms) if state == libvirt.VIR_DOMAIN_CONTROL_OCCUPIED else 0

    def stall(self, uuid: str, stalled: bool) -> None:
        if self._stalls is None:
            raise Conflict(
                f"{self._uri} runs real QEMU processes: stop one with SIGSTOP instead",
                code="stall_unsupported",
            )
        if stalled:
            self._stalls.stall(uuid)
        else:
            self._stalls.resume(uuid)


def _stats(dom: libvirt.virDomain, raw: dict[str, Any], busy_ms: int) -> DomainStats:
    state = int(raw.get("state.state", libvirt.VIR_DOMAIN_NOSTATE))
    nets = int(raw.get("net.count", 0))
    blocks = int(raw.get("block.count", 0))
    return DomainStats(
        uuid=dom.UUIDString(),
        name=dom.name(),
        state=STATES.get(state, DomainState.UNKNOWN),
        vcpus=int(raw.get("vcpu.current", 0)),
        cpu_time_ns=int(raw.get("cpu.time", 0)),
        memory_kib=int(raw.get("balloon.current", 0)),
        rss_kib=int(raw.get("balloon.rss", 0)),
        guest_used_kib=_guest_used(raw),
        net_rx_bytes=sum(int(raw.get(f"net.{i}.rx.bytes", 0)) for i in range(nets)),
        net_tx_bytes=sum(int(raw.get(f"net.{i}.tx.bytes", 0)) for i in range(nets)),
        disk_read_bytes=sum(int(raw.get(f"block.{i}.rd.bytes", 0)) for i in range(blocks)),
        disk_write_bytes=sum(int(raw.get(f"block.{i}.wr.bytes", 0)) for i in range(blocks)),
        net_rx_packets=sum(int(raw.get(f"net.{i}.rx.pkts", 0)) for i in range(nets)),
        net_tx_packets=sum(int(raw.get(f"net.{i}.tx.pkts", 0)) for i in range(nets)),
        disk_read_requests=sum(int(raw.get(f"block.{i}.rd.reqs", 0)) for i in range(blocks)),
        disk_write_requests=sum(int(raw.get(f"block.{i}.wr.reqs", 0)) for i in range(blocks)),
        monitor_busy_ms=busy_ms,
    )


def _guest_used(raw: dict[str, Any]) -> int | None:
    """The guest's own memory use, from its balloon driver's statistics, when it sends them."""
    available, unused = raw.get("balloon.available"), raw.get("balloon.unused")
    if available is None or unused is None:
        return None
    return max(int(available) - int(unused), 0)
