"""Reconcile by diff, all or nothing: the machinery both real backends share.

A backend reads what it owns (``_observe``), computes what should be (``_desired``),
and turns the diff into ``Step``s, each of which its ``_perform`` carries out at once
(one netlink call, or one OVSDB transaction). The steps run in order; when one fails,
the inverse of every step done so far runs in reverse, and the node is read again to
prove it is back where it started.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from towerbox_core.errors import BackendError, TowerboxError
from towerbox_core.faults import fault_point
from upf_bridge.backends import netlink
from upf_bridge.backends.datapaths import Datapaths
from upf_bridge.model import N6Config, Trunk, TrunkKind
from upf_bridge.naming import OwnedRanges
from upf_bridge.state import Change, Diff, State, diff

log = logging.getLogger(__name__)

ObservedT = TypeVar("ObservedT")


@dataclass(frozen=True)
class Step:
    """Changes one ``_perform`` call carries out together; ``via`` says how."""

    via: str
    changes: tuple[Change, ...]

    def inverse(self) -> Step:
        return Step(self.via, tuple(c.inverse() for c in reversed(self.changes)))

    def __str__(self) -> str:
        return "; ".join(str(c) for c in self.changes)


def run_steps(steps: Sequence[Step], perform: Callable[[Step], None]) -> None:
    """Perform ``steps`` in order; on failure undo the done ones in reverse, then raise."""
    done: list[Step] = []
    try:
        for step in steps:
            perform(step)
            done.append(step)
            fault_point("n6.apply.after_step")
    except Exception as err:
        # Any failure, ours or a library's: the node must not stay half-applied.
        failed = []
        for step in reversed(done):
            try:
                perform(step.inverse())
            except Exception as undo_err:  # keep undoing the rest
                failed.append(f"{step}: {undo_err}")
        if failed:
            raise BackendError(
                f"apply failed ({err}) and undoing it failed too: {'; '.join(failed)}",
                code="rollback_incomplete",
                leftovers=failed,
            ) from err
        if isinstance(err, TowerboxError):
            raise
        raise BackendError(f"apply failed: {err}", code="apply_failed") from err


class Reconciler(abc.ABC, Generic[ObservedT]):
    """Plan, apply and roll back for one backend; subclasses read and write the node."""

    kind: TrunkKind

    def __init__(self, *, owner: str, ranges: OwnedRanges) -> None:
        self.owner = owner
        self.ranges = ranges
        # One reconcile at a time per backend; reads take it too so that counters
        # never see a half-done apply.
        self._lock = threading.RLock()

    @abc.abstractmethod
    def _observe(self, config: N6Config) -> ObservedT: ...

    @abc.abstractmethod
    def _state(self, observed: ObservedT) -> State: ...

    @abc.abstractmethod
    def _desired(self, config: N6Config, observed: ObservedT) -> State: ...

    @abc.abstractmethod
    def _steps(self, diff: Diff) -> list[Step]: ...

    @abc.abstractmethod
    def _perform(self, step: Step) -> None: ...

    @contextmanager
    def _connected(self) -> Iterator[None]:
        """Hold the connection that one call's reads and writes share (under the lock)."""
        yield

    def datapaths(self) -> Datapaths | None:
        return None

    def check(self, desired: N6Config) -> None:
        for trunk in desired.of_kind(self.kind).trunks:
            self._datapath_of(trunk)

    def _datapath_of(self, trunk: Trunk) -> str:
        """The datapath a new bridge for ``trunk`` gets: ``auto`` resolved, or refused."""
        found = self.datapaths()
        return trunk.datapath_type if found is None else found.resolve(trunk.datapath_type)

    def plan(self, desired: N6Config) -> Diff:
        config = desired.of_kind(self.kind)
        self.check(config)
        with self._lock, self._connected():
            observed = self._observe(config)
            return diff(self._state(observed), self._desired(config, observed))

    def apply(self, desired: N6Config, *, dry_run: bool = False) -> Diff:
        config = desired.of_kind(self.kind)
        self.check(config)
        with self._lock, self._connected():
            observed = self._observe(config)
            before = self._state(observed)
            changes = diff(before, self._desired(config, observed))
            if dry_run or changes.empty:
                return changes
            log.info(
                "applying N6 changes",
                extra={"backend": self.kind.value, "changes": changes.lines()},
            )
            try:
                run_steps(self._steps(changes), self._perform)
            except TowerboxError as err:
                self._check_restored(config, before, err)
                log.warning("N6 apply rolled back: %s", err.message)
                raise
            return changes

    def _check_restored(self, config: N6Config, before: State, err: TowerboxError) -> None:
        left = diff(self._state(self._observe(config)), before)
        if not left.empty:
            raise BackendError(
                f"apply failed ({err.message}) and the node differs from before: "
                + "; ".join(left.lines()),
                code="rollback_incomplete",
                leftovers=left.lines(),
            ) from err


class NetlinkReconciler(Reconciler[ObservedT]):
    """A reconciler whose calls share one netlink session, opened under the lock."""

    def __init__(self, *, owner: str, ranges: OwnedRanges) -> None:
        super().__init__(owner=owner, ranges=ranges)
        self._nl: netlink.Netlink | None = None

    @contextmanager
    def _connected(self) -> Iterator[None]:
        with netlink.session() as nl:
            self._nl = nl
            try:
                yield
            finally:
                self._nl = None

    @property
    def nl(self) -> netlink.Netlink:
        if self._nl is None:
            raise RuntimeError("netlink is used outside a backend call")
        return self._nl
