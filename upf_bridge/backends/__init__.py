"""N6 network backends: one ``NetBackend`` per trunk kind, real or simulated."""

from __future__ import annotations

import logging

from towerbox_core.errors import TowerboxError
from upf_bridge import naming
from upf_bridge.backends.base import NetBackend
from upf_bridge.model import TrunkKind

log = logging.getLogger(__name__)


def backend_for(
    kind: TrunkKind, *, owner: str = naming.DEFAULT_OWNER, simulated: bool = False
) -> NetBackend:
    """The backend for trunks of ``kind``; imports only what that kind needs."""
    if simulated:
        from upf_bridge.backends.simulated import SimulatedBackend

        return SimulatedBackend(kind=kind, owner=owner)
    if kind == TrunkKind.OVS:
        from upf_bridge.backends.ovs import OvsBackend

        return OvsBackend(owner=owner)
    from upf_bridge.backends.linux import LinuxBackend

    return LinuxBackend(owner=owner)


def probe(kind: TrunkKind, *, owner: str = naming.DEFAULT_OWNER) -> NetBackend:
    """The real backend when it answers, else the simulated one; logs which and why."""
    backend = backend_for(kind, owner=owner)
    try:
        line = backend.describe()
        backend.counters()  # reads OVSDB and netlink: proves both answer
    except TowerboxError as err:
        backend = backend_for(kind, owner=owner, simulated=True)
        log.warning("%s (%s)", backend.describe(), err.message)
        return backend
    log.info("%s", line)
    return backend
