"""Named fault points: where a crash test may have the process die on the spot.

``TOWERBOX_FAULT=vm.create.after_define`` makes the first pass through
``fault_point("vm.create.after_define")`` SIGKILL the process; ``name:3`` the third
pass. SIGKILL, not an exception: no ``finally``, no undo, no handler runs, exactly
as when the OOM killer or a power cut ends the daemon half-way through an operation.

The variable is read once, at import. Unset (every production node), a fault point
is one comparison against None.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)

ENV = "TOWERBOX_FAULT"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.strip().partition(":")
    try:
        hit = int(nth) if nth else 1
    except ValueError:
        hit = 0
    if not name or hit < 1:
        # A test that names a point badly must not pass because nothing ever died.
        raise SystemExit(f"{ENV}={value!r}: expected a point's name, optionally ':n' (n >= 1)")
    return name, hit


_armed = _parse(os.environ.get(ENV))
_hits = [0]  # passes through the armed point so far
_hits_lock = threading.Lock()


def fault_point(name: str) -> None:
    """Die here (SIGKILL) when the environment names this point and hit."""
    if _armed is None or _armed[0] != name:
        return
    with _hits_lock:
        _hits[0] += 1
        if _hits[0] != _armed[1]:
            return
    # Said on stderr before dying, so the test's log shows where the process went.
    log.warning("fault point %s (hit %d): killing the process", name, _hits[0])
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
