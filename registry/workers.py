"""The registry's worker processes end with the process that started them.

With several workers, uvicorn's supervisor starts them and stops them when it is
stopped. Killed outright (SIGKILL, the OOM killer), it cannot: its workers would go on
serving the port and holding database connections, with nothing left to stop or
restart them, and a new registry could not bind the port. systemd kills the unit's
whole cgroup, but the registry is also run without it (``make run``, a container
whose init is not systemd). So each worker asks Linux for a SIGTERM when its parent
dies (``PR_SET_PDEATHSIG``), which it handles as uvicorn's graceful stop.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal

log = logging.getLogger(__name__)

# Set by the supervisor before it starts the workers: the process no worker outlives.
SUPERVISOR_ENV = "TOWERBOX_REGISTRY_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def mark_supervisor() -> None:
    """In the supervisor, before uvicorn starts the workers (they inherit it)."""
    os.environ[SUPERVISOR_ENV] = str(os.getpid())


def end_with_supervisor() -> None:
    """In a worker: a SIGTERM from the kernel when the supervisor is gone."""
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if not supervisor.isdigit():
        return  # not started by `towerbox registry serve` with several workers
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        failed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0
    except (OSError, AttributeError):  # not Linux
        failed = True
    if failed:
        log.warning("this worker cannot ask to end with the registry's supervisor")
    # The supervisor may have died before the request took effect: then no signal
    # will come, and this worker was handed to another parent meanwhile.
    if os.getppid() != int(supervisor):
        log.warning("the registry's supervisor is gone; this worker stops")
        os.kill(os.getpid(), signal.SIGTERM)
