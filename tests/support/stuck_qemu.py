"""A real QEMU that stops answering: SIGSTOP its process, and always SIGCONT it after."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import libvirt

# Where libvirtd's qemu driver writes each running domain's QEMU process id.
PID_DIR = Path("/run/libvirt/qemu")


def qemu_pid(domain: str) -> int:
    return int((PID_DIR / f"{domain}.pid").read_text().strip())


@contextmanager
def stopped_qemu(domain: str) -> Iterator[int]:
    """The domain's QEMU stopped (as a wedged one is) for the block; its pid."""
    pid = qemu_pid(domain)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        with suppress(ProcessLookupError):  # forced off meanwhile
            os.kill(pid, signal.SIGCONT)


def remove_domains(conn: libvirt.virConnect, names: Iterable[str]) -> None:
    """Force off and undefine what a failed run left (QEMU continued first: a stopped
    one would hold libvirtd's destroy)."""
    for name in names:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            continue
        if dom.isActive():
            with suppress(OSError, ValueError):
                os.kill(qemu_pid(name), signal.SIGCONT)
            dom.destroy()
        dom.undefine()
        Path(f"/var/log/libvirt/qemu/{name}.log").unlink(missing_ok=True)
