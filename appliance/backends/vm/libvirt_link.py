"""One libvirt connection, and what libvirt's answers mean in Towerbox's words.

Shared by the backend's calls and its stats reader: libvirtError becomes a
TowerboxError with a stable code here.
"""

from __future__ import annotations

import logging
import threading

import libvirt

from appliance.backends.vm.protocol import DomainState
from towerbox_core.errors import BackendError, BackendUnavailable, Conflict, NotFound

log = logging.getLogger(__name__)

STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: DomainState.UNKNOWN,
    libvirt.VIR_DOMAIN_RUNNING: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: DomainState.BLOCKED,
    libvirt.VIR_DOMAIN_PAUSED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: DomainState.SHUTTING_DOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: DomainState.SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: DomainState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: DomainState.SUSPENDED,
}


def translate(err: libvirt.libvirtError, what: str) -> Exception:
    code = err.get_error_code()
    msg = f"{what}: {err.get_error_message()}"
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return NotFound(msg, code="domain_not_found")
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return Conflict(msg, code="domain_state_conflict")
    if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC):
        return BackendUnavailable(msg, code="libvirt_unavailable")
    if code in (libvirt.VIR_ERR_XML_ERROR, libvirt.VIR_ERR_CONFIG_UNSUPPORTED):
        return BackendError(msg, code="libvirt_rejected_config")
    return BackendError(msg, code="libvirt_error", libvirt_code=code)


class Link:
    """One libvirt connection, opened on first use and reopened if it dies."""

    def __init__(self, uri: str) -> None:
        self._uri = uri
        self._lock = threading.Lock()
        self._conn: libvirt.virConnect | None = None

    def get(self) -> libvirt.virConnect:
        with self._lock:
            if self._conn is not None:
                try:
                    if bool(self._conn.isAlive()):
                        return self._conn
                except libvirt.libvirtError:
                    pass
                log.warning("libvirt connection to %s lost; reconnecting", self._uri)
            try:
                self._conn = libvirt.open(self._uri)
            except libvirt.libvirtError as err:
                raise translate(err, f"cannot connect to {self._uri}") from err
            return self._conn

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError as err:
                log.debug("closing the connection to %s: %s", self._uri, err)
