"""The one door to subprocesses (qemu-img, ovs-vsctl, ip, ...).

argv lists only, never a shell; a timeout always; failures become BackendError with
the command's stderr, so a caller never parses CalledProcessError.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from towerbox_core.errors import BackendError, BackendUnavailable

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
    input_text: str | None = None,
    code: str = "command_failed",
) -> Completed:
    """Run a command and return its output; raise BackendError when it fails."""
    args = tuple(argv)
    if shutil.which(args[0]) is None:
        raise BackendUnavailable(
            f"{args[0]} is not installed on this node", code="command_not_found", command=args[0]
        )
    log.debug("run %s", " ".join(args))
    try:
        proc = subprocess.run(
            args,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise BackendError(
            f"{args[0]} did not finish within {timeout:.0f} s",
            code="command_timeout",
            command=args[0],
        ) from err
    done = Completed(args, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise BackendError(
            f"{args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}",
            code=code,
            command=args[0],
        )
    return done
