"""Free space on the state directory: refuse writes before SQLite meets a full disk.

SQLite rolls back a transaction that hits SQLITE_FULL, so nothing is half-written,
but the wall can come mid-transaction, mid-checkpoint or while another writer (an
overlay, a seed ISO, a log) takes the last blocks. Keeping a small reserve free and
refusing writes below it keeps the database off the wall in the first place; the
reserve is also what lets an operator still log in (``may_use_reserve``) to see the
node while it is full.

A write that hit the wall anyway (no reserve configured, or something else filled
the disk faster) marks the disk full until free space grows past what it was then:
the node says so on /healthz and refuses further writes at once instead of trying
each one against a disk that has not changed. Nothing needs a restart: every check
reads the filesystem's free space again.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import ParamSpec, TypeVar

from towerbox_core.errors import StorageFull

log = logging.getLogger(__name__)

MIB = 1 << 20
P = ParamSpec("P")
R = TypeVar("R")


class StateSpace:
    def __init__(self, state_dir: Path, reserve_bytes: int = 0) -> None:
        self.state_dir = state_dir
        self.reserve_bytes = reserve_bytes
        self._lock = threading.Lock()
        self._hit_free: int | None = None  # free bytes when a write last met the wall
        self._skipped: set[str] = set()  # jobs' writes skipped, logged since last room

    def free_bytes(self) -> int | None:
        """Free bytes for an unprivileged writer; None when the filesystem cannot say."""
        try:
            st = os.statvfs(self.state_dir)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def full(self, free: int | None = None) -> bool:
        """Below the reserve, or no more free than when a write last met the wall."""
        if free is None:
            free = self.free_bytes()
        if free is None:
            return False  # unknown: let the write try; a real ENOSPC still maps
        with self._lock:
            if self._hit_free is not None:
                if free <= self._hit_free:
                    return True
                self._hit_free = None
                log.info("space returned on %s: %d bytes free", self.state_dir, free)
        return free < self.reserve_bytes

    def check(self, may_use_reserve: bool = False) -> None:
        """Refuse a write now when the disk is full; ``may_use_reserve``: only when a
        write already met the wall."""
        free = self.free_bytes()
        if free is None:
            return
        if may_use_reserve:
            with self._lock:
                hit = self._hit_free
            if hit is None or free > hit:
                return
        if self.full(free):
            raise self.error(free)
        with self._lock:
            self._skipped.clear()

    def first_skip(self, what: str) -> bool:
        """Whether ``what`` is skipped for the first time since writes last had room."""
        with self._lock:
            first = what not in self._skipped
            self._skipped.add(what)
        return first

    def hit(self) -> StorageFull:
        """A write met the wall (SQLITE_FULL, ENOSPC): remember it, and the error to raise."""
        free = self.free_bytes() or 0
        with self._lock:
            self._hit_free = free
        return self.error(free)

    def error(self, free: int) -> StorageFull:
        reserve = (
            f", below the {self.reserve_bytes // MIB} MiB reserve" if self.reserve_bytes else ""
        )
        return StorageFull(
            f"the state directory {self.state_dir} is full ({free // 1024} KiB free{reserve}): "
            "the write was refused and nothing was changed; free space on that disk and "
            "retry (reads keep working)",
            path=str(self.state_dir),
            free_bytes=free,
            reserve_bytes=self.reserve_bytes,
        )


# One per process, like the database it guards (open_database installs it).
_space: StateSpace | None = None
# Set while a use case that may write into the reserve runs (see uses_reserve).
_reserve_ok: ContextVar[bool] = ContextVar("reserve_ok", default=False)


def install(space: StateSpace) -> None:
    global _space  # noqa: PLW0603 - one state database per process, like db_proxy
    _space = space


def current() -> StateSpace | None:
    return _space


@contextmanager
def skipped_while_full(what: str) -> Iterator[None]:
    """For the node's own jobs: a write refused for space is skipped, the job goes on
    (a monitor that stopped sweeping would stop the watchdog, and a start that stopped
    at its first reconcile would restart no VM). Logged once per full disk; what the
    jobs compare against the database is recorded when space returns."""
    try:
        yield
    except StorageFull as err:
        if _space is None or _space.first_skip(what):
            log.error("%s not recorded: %s", what, err.message)


def check_writable(may_use_reserve: bool = False) -> None:
    """Refuse a write now (``StorageFull``) when the state directory's disk is full:
    before a use case makes files it would have to undo."""
    if _space is not None:
        _space.check(may_use_reserve or _reserve_ok.get())


def uses_reserve(use_case: Callable[P, R]) -> Callable[P, R]:
    """A use case whose writes may go below the reserve: one that frees space or stops
    what fills it (stopping or deleting a VM: a guest writing its overlay is the
    likeliest way the state disk fills, and an operator must be able to stop it)."""

    @functools.wraps(use_case)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _reserve_ok.set(True)
        try:
            return use_case(*args, **kwargs)
        finally:
            _reserve_ok.reset(token)

    return run
