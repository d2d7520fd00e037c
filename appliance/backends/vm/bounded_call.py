"""Stats calls that no single domain can hold up, and the simulated stuck QEMU.

A QEMU that stops answering (SIGSTOPped, wedged in the kernel) takes with it the
first libvirt call that needs its monitor: libvirtd has no deadline for a monitor
reply, so that call returns only when QEMU does. ``BoundedCalls`` runs such a call on
a thread of its own and gives up on it at a deadline; the thread is left behind
(stranded) and ends by itself once QEMU answers. While it waits it holds the
domain's job, so a retry with libvirt's no-wait flag skips that domain's monitor
figures and answers at once.

The libvirt test driver has no QEMU and no monitor. ``SimulatedStalls`` gives it one
that can stop answering, the way the qemu driver behaves, so the monitor's handling of
a stuck domain is tested in fast tests on the simulated backend too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from towerbox_core.errors import BackendUnavailable

_T = TypeVar("_T")

# Past this many calls still waiting on silent domains, no new one is started: each
# holds a thread and a connection to libvirtd.
MAX_STRANDED = 4


class _Call(Generic[_T]):
    def __init__(self, fn: Callable[[], _T], after_stranded: Callable[[], None] | None) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: _T | None = None
        self.error: BaseException | None = None
        self._after_stranded = after_stranded
        self._lock = threading.Lock()
        self._stranded = False

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as err:
            self.error = err
        finally:
            with self._lock:
                self.done.set()
                late = self._stranded
            if late and self._after_stranded is not None:
                self._after_stranded()

    def strand(self) -> bool:
        """Give up on the call; False if it returned meanwhile (its result stands)."""
        with self._lock:
            if self.done.is_set():
                return False
            self._stranded = True
            return True


class BoundedCalls:
    """Blocking calls run on their own threads, each waited for up to a deadline."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._stranded: set[_Call[object]] = set()

    @property
    def stranded(self) -> int:
        """Calls given up on that have not returned yet."""
        with self._lock:
            self._stranded = {c for c in self._stranded if not c.done.is_set()}
            return len(self._stranded)

    def call(
        self,
        fn: Callable[[], _T],
        deadline_s: float,
        after_stranded: Callable[[], None] | None = None,
    ) -> _T | None:
        """``fn()``'s result, or None when it did not return within ``deadline_s``;
        ``after_stranded`` runs on the call's thread when such a call returns at last.

        An exception from ``fn`` is raised here, as if it had been called directly.
        """
        if self.stranded >= MAX_STRANDED:
            raise BackendUnavailable(
                f"{self._what}: {MAX_STRANDED} calls are still waiting on domains that do "
                "not answer; no new one is started until one returns",
                code="stats_stalled",
            )
        call: _Call[_T] = _Call(fn, after_stranded)
        # A daemon thread: a call stuck on a silent QEMU must not keep the process
        # from exiting.
        threading.Thread(target=call.run, name=f"bounded {self._what}", daemon=True).start()
        if not call.done.wait(deadline_s) and call.strand():
            with self._lock:
                self._stranded.add(call)  # type: ignore[arg-type]
            return None
        if call.error is not None:
            raise call.error
        return call.result


class SimulatedStalls:
    """Test-driver domains whose (absent) QEMU has stopped answering.

    As with the qemu driver: the first stats call that reaches a stalled domain takes
    its job and blocks until the domain is resumed; while it is blocked the domain's
    monitor reads as occupied since then, and no-wait calls pass over the domain.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resumed: dict[str, threading.Event] = {}  # stalled domains
        self._occupied: dict[str, float] = {}  # monotonic time its monitor was taken

    def stall(self, uuid: str) -> None:
        with self._lock:
            self._resumed.setdefault(uuid, threading.Event())

    def resume(self, uuid: str) -> None:
        with self._lock:
            event = self._resumed.pop(uuid, None)
        if event is not None:
            event.set()

    def enter(self, uuids: Iterable[str]) -> None:
        """A stats call reaches ``uuids``: block on the first stalled one not yet taken."""
        with self._lock:
            if not self._resumed:
                return  # nothing stalled: the usual case, at no cost per domain
        for uuid in uuids:
            with self._lock:
                event = self._resumed.get(uuid)
                if event is None or uuid in self._occupied:
                    continue
                self._occupied[uuid] = time.monotonic()
            try:
                event.wait()
            finally:
                with self._lock:
                    self._occupied.pop(uuid, None)

    def busy(self) -> dict[str, int]:
        """How long each taken domain's monitor has been held, in ms (free ones absent)."""
        now = time.monotonic()
        with self._lock:
            return {uuid: int((now - t) * 1000) for uuid, t in self._occupied.items()}
