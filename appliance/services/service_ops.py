"""Long service operations (deploy, scale, update, remove) run off the API's threads.

One operation at a time per service; a second is refused with ``service_busy``.
Each keeps a log of what it did, which GET /api/v1/services/{name} shows while it
runs and after it ends. The thread runs in a copy of the caller's context, so the
journal names the caller as the actor of what it writes.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable

from towerbox_core.api.services import ServiceProgress
from towerbox_core.errors import Conflict

log = logging.getLogger(__name__)


class Operation:
    def __init__(self, service: str, kind: str) -> None:
        self.service = service
        self.kind = kind
        self.done = False
        self.failed = False  # ended without doing what it was asked
        self._steps: list[str] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def step(self, text: str) -> None:
        with self._lock:
            self._steps.append(text)
        log.info("service %s: %s", self.service, text, extra={"service": self.service})

    def fail(self, text: str) -> None:
        """The step that ends it without doing what it was asked."""
        self.failed = True
        self.step(text)

    def progress(self) -> ServiceProgress:
        with self._lock:
            return ServiceProgress(
                operation=self.kind, done=self.done, steps=list(self._steps), failed=self.failed
            )


class Runner:
    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        # Called with the service's name in the operation's thread once it has ended.
        self.listeners: list[Callable[[str], None]] = []

    def start(
        self,
        service: str,
        kind: str,
        work: Callable[[Operation], None],
        before: Callable[[], None] | None = None,
    ) -> Operation:
        """Run ``work`` in its own thread; ``before`` runs first, once no other
        operation of the service runs (to record the new state)."""
        with self._lock:
            current = self._ops.get(service)
            if current is not None and not current.done:
                raise Conflict(
                    f"service {service} is busy with a {current.kind}; wait for it to end",
                    code="service_busy",
                )
            if before is not None:
                before()
            op = self._ops[service] = Operation(service, kind)
            context = contextvars.copy_context()
            thread = threading.Thread(
                target=context.run, args=(self._run, op, work), name=f"service-{service}"
            )
            self._threads[service] = thread
        thread.start()
        return op

    def _run(self, op: Operation, work: Callable[[Operation], None]) -> None:
        try:
            work(op)
        except Exception:  # the operation records its own failures; this is a bug
            log.exception("service %s: %s crashed", op.service, op.kind)
            op.fail(f"{op.kind} stopped on an internal error; see the node's log")
        finally:
            op.done = True
        for listener in self.listeners:
            try:
                listener(op.service)
            except Exception:  # a listener's failure is not the operation's
                log.exception("service %s: a listener of its %s failed", op.service, op.kind)

    def busy(self, service: str) -> bool:
        op = self._ops.get(service)
        return op is not None and not op.done

    def kind(self, service: str) -> str | None:
        """The kind of the operation running on ``service``; None when none runs."""
        op = self._ops.get(service)
        return op.kind if op is not None and not op.done else None

    def cancel(self, service: str, timeout_s: float) -> bool:
        """Ask the running operation to stop at its next health wait (it rolls back
        what it made) and wait for it; True once none runs."""
        op = self._ops.get(service)
        thread = self._threads.get(service)
        if op is None or op.done or thread is None:
            return True
        op.step("asked to stop")
        op.stopping.set()
        thread.join(timeout_s)
        return op.done

    def wait(self, service: str, timeout_s: float) -> bool:
        """Wait for the operation running on ``service``; True once none runs."""
        thread = self._threads.get(service)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        return not self.busy(service)

    def progress(self, service: str) -> ServiceProgress | None:
        op = self._ops.get(service)
        return op.progress() if op else None

    def forget(self, service: str) -> None:
        with self._lock:
            self._ops.pop(service, None)
            self._threads.pop(service, None)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait for every running operation to end; False if one is still running."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads.values())

    def stop_all(self, timeout_s: float = 10.0) -> None:
        """At daemon stop: ask every operation to end at its next wait, and wait."""
        for op in list(self._ops.values()):
            op.stopping.set()
        self.wait_idle(timeout_s)
