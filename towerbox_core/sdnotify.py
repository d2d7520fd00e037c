"""sd_notify without libsystemd: READY, WATCHDOG and STOPPING over NOTIFY_SOCKET."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one notification; False when not run by systemd (no NOTIFY_SOCKET)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace socket
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            # Never wait: this runs on the event loop, and a reader that stopped
            # reading (a full datagram queue) must not freeze the daemon's API.
            sock.send(message.encode(), socket.MSG_DONTWAIT)
    except BlockingIOError:
        log.warning("sd_notify to %s dropped %r: the receiver's queue is full", addr, message)
        return False
    except OSError as err:
        log.warning("sd_notify to %s failed: %s", addr, err)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the watchdog timeout systemd asked for, or None when it asked for none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
