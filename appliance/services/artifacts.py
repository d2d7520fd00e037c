"""Artifacts on the node: what the catalog needs, fetching it now, and its progress.

Fetches run on a small pool of worker threads (``[artifacts] concurrency``) that
share one bandwidth cap, so the API answers at once with a progress object and stays
responsive. A cut transfer, or an origin that says it is unavailable for now, is
tried again (resuming with HTTP Range) after a wait that doubles while tries in a row
take the file no further, up to ``retries`` of them. A fetch asked for now is written
down until it ends, and one a stop cut short starts again at the next start. Each
fetch's outcome is one journal entry: ``artifact.fetched`` or ``artifact.failed``.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from appliance.backends.artifacts.bandwidth import TokenBucket
from appliance.backends.artifacts.http_fetch import INTERRUPTED, FetchPaused, fetch
from appliance.backends.artifacts.store import ArtifactStore
from appliance.catalog.images import file_sha256
from appliance.catalog.model import ArtifactRef, CatalogEntry, entry_artifacts
from appliance.config import ArtifactsConfig
from appliance.services import artifact_intents, artifact_verified
from appliance.services.artifact_origin import ArtifactOrigins, is_registry_source
from appliance.services.artifact_progress import FetchTracker
from appliance.services.auth import Principal
from appliance.services.sync import SyncStatusBoard
from appliance.store import journal
from towerbox_core.api.artifacts import ArtifactList, ArtifactView, FetchProgress
from towerbox_core.errors import BackendUnavailable, Conflict, NotFound, TowerboxError

log = logging.getLogger(__name__)

_RETRY_WAIT_MAX_S = 60.0  # the longest wait before a cut transfer is resumed
NOW = "now"  # an operator's "fetch now"
RESUMED = "resumed"  # one asked for, cut short by a daemon stop, fetched again at start

VmFiles = Callable[[], dict[str, list[str]]]  # image-folder file -> VMs that use it


@dataclass
class Needed:
    ref: ArtifactRef
    entries: list[str] = field(default_factory=list)
    conflict: bool = False  # two entries name it with different hashes


def needed_artifacts(catalog: Mapping[str, CatalogEntry]) -> dict[str, Needed]:
    """Every artifact the catalog names, with the entries that need it."""
    result: dict[str, Needed] = {}
    for entry_name in sorted(catalog):
        for ref in entry_artifacts(catalog[entry_name]):
            known = result.setdefault(ref.name, Needed(ref))
            known.entries.append(entry_name)
            if known.ref.sha256 != ref.sha256:
                known.conflict = True
    return result


class ArtifactService:
    def __init__(
        self,
        store: ArtifactStore,
        catalog: Mapping[str, CatalogEntry],
        vm_files: VmFiles,
        conf: ArtifactsConfig,
        origins: ArtifactOrigins | None = None,
    ) -> None:
        self.store = store
        self.origins = origins or ArtifactOrigins(conf.registry_relay, SyncStatusBoard())
        self.catalog = catalog  # the daemon's live catalog: central documents change it
        self.vm_files = vm_files
        self.conf = conf
        self.bucket = TokenBucket(conf.bandwidth_bytes_s)
        self._pool = ThreadPoolExecutor(conf.concurrency, thread_name_prefix="artifact-fetch")
        self._lock = threading.Lock()
        self._fetches: dict[str, FetchTracker] = {}
        # name -> (inode, size, mtime_ns, sha256) of files proven, kept across restarts
        self._verified = artifact_verified.load()
        self._closed = threading.Event()

    # -- reading -------------------------------------------------------------------------

    def needed(self) -> dict[str, Needed]:
        return needed_artifacts(self.catalog)

    def artifacts(self) -> ArtifactList:
        vm_files = self.vm_files()
        views = []
        for name, need in sorted(self.needed().items()):
            tracker = self._fetches.get(name)
            on_disk = self.store.present_size(name)
            views.append(
                ArtifactView(
                    name=name,
                    kind=need.ref.kind,
                    url=need.ref.url,
                    sha256=need.ref.sha256,
                    size=need.ref.size,
                    state=self._state(name, need, on_disk, tracker),
                    size_on_disk=on_disk,
                    needed_by=need.entries,
                    used_by_vms=sorted(vm_files.get(name, [])),
                    fetch=tracker.view() if tracker is not None else None,
                )
            )
        return ArtifactList(
            image_dir=str(self.store.root), free_bytes=self.store.free_bytes(), artifacts=views
        )

    def _state(
        self, name: str, need: Needed, on_disk: int | None, tracker: FetchTracker | None
    ) -> str:
        if need.conflict:
            return "conflict"
        if tracker is not None and tracker.active:
            return "fetching"
        if on_disk is None:
            return "missing"
        return "verified" if self.is_verified(name, need.ref.sha256) else "present"

    def is_verified(self, name: str, sha256: str) -> bool:
        known = self._verified.get(name)
        if known is None:
            return False
        try:
            st = self.store.path(name).stat()
        except OSError:
            return False
        return known == (st.st_ino, st.st_size, st.st_mtime_ns, sha256)

    def fetches(self) -> list[FetchProgress]:
        with self._lock:
            trackers = sorted(self._fetches.values(), key=lambda t: t.name)
        return [t.view() for t in trackers]

    def active_names(self) -> set[str]:
        with self._lock:
            return {n for n, t in self._fetches.items() if t.active}

    # -- fetching ------------------------------------------------------------------------

    def fetch_now(self, principal: Principal, name: str) -> FetchProgress:
        principal.require_infra_admin()
        # Written down first: a restart before the outcome is journalled starts it again.
        artifact_intents.ask(name)
        try:
            return self.submit(name, NOW).view()
        except TowerboxError:
            with journal.write_transaction():
                artifact_intents.settle(name)
            raise

    def resume_asked(self) -> list[str]:
        """At start: fetch again what was asked for before a stop cut it short."""
        resumed = []
        for name in artifact_intents.asked():
            try:
                # The agent has not reported yet at start: its relay is tried, not judged.
                self.submit(name, RESUMED, check_origin=False)
            except (NotFound, Conflict) as err:  # the catalog no longer fetches it
                log.warning("fetch of %s not resumed: %s", name, err.message)
                with journal.write_transaction():
                    artifact_intents.settle(name)
                continue
            resumed.append(name)
        if resumed:
            log.info("fetches asked for before the restart, resumed: %s", ", ".join(resumed))
        return resumed

    def submit(
        self,
        name: str,
        reason: str,
        should_stop: Callable[[], bool] = lambda: False,
        *,
        check_origin: bool = True,
    ) -> FetchTracker:
        """Queue a fetch of ``name`` (or return the one already under way)."""
        need = self.needed().get(name)
        if need is None:
            raise NotFound(
                f"no catalog entry needs an artifact {name!r}", code="artifact_not_found"
            )
        if need.conflict:
            raise Conflict(
                f"catalog entries {', '.join(need.entries)} name artifact {name!r} with "
                "different hashes; fix the catalog first",
                code="artifact_conflict",
            )
        if need.ref.url is None:
            raise Conflict(f"artifact {name!r} has no url to fetch it from", code="artifact_no_url")
        with self._lock:
            current = self._fetches.get(name)
            if current is not None and current.active:
                if reason == NOW:
                    current.asked_now = True
                return current
            if (
                check_origin
                and is_registry_source(need.ref.url)
                and self.store.present_size(name) is None
            ):
                self.origins.check_registry(name)  # say so now, not in the fetch's outcome
            tracker = FetchTracker(name, reason)
            self._fetches[name] = tracker
        ctx = contextvars.copy_context()  # the journal's actor follows the fetch
        self._pool.submit(ctx.run, self._run, tracker, need.ref, should_stop)
        return tracker

    def _run(
        self, tracker: FetchTracker, ref: ArtifactRef, should_stop: Callable[[], bool]
    ) -> None:
        tracker.begin(ref.size)
        started = time.monotonic()
        outcome: tuple[str, str | None, str | None] = ("done", None, None)
        entry: tuple[str, dict[str, Any]] | None = None
        try:
            self._fetch_with_retries(tracker, ref, should_stop)
        except FetchPaused as err:
            log.info("%s", err.message, extra={"artifact": ref.name})  # names the artifact
            outcome = ("paused", None, None)
        except TowerboxError as err:
            log.error("not fetched: %s (%s)", err.message, err.code, extra={"artifact": ref.name})
            outcome = ("failed", err.code, err.message)
            entry = ("artifact.failed", {"code": err.code, "detail": err.message})
        except Exception as err:
            log.exception("artifact %s: fetch crashed", ref.name)
            outcome = ("failed", "internal_error", str(err))
            entry = ("artifact.failed", {"code": "internal_error", "detail": str(err)})
        else:
            entry = (
                "artifact.fetched",
                {
                    "sha256": ref.sha256,
                    "size": self.store.present_size(ref.name),
                    "transferred": tracker.transferred,
                    "seconds": round(time.monotonic() - started, 3),
                    "reason": tracker.reason,
                },
            )
        # The outcome is in the journal before anyone sees the fetch end; a paused
        # fetch (the daemon stopping) stays asked for.
        settled = outcome[0] != "paused"
        with self._lock:  # an ask that finds this fetch under way is covered by its outcome
            self._settle(tracker, ref.name, entry, settled, outcome)

    def _settle(
        self,
        tracker: FetchTracker,
        name: str,
        entry: tuple[str, dict[str, Any]] | None,
        settled: bool,
        outcome: tuple[str, str | None, str | None],
    ) -> None:
        try:
            if entry is not None:
                self._journal(name, *entry, settled=settled)
        except Exception:
            log.exception("artifact %s: the outcome could not be journalled", name)
        finally:
            tracker.finish(*outcome)

    def _fetch_with_retries(
        self, tracker: FetchTracker, ref: ArtifactRef, should_stop: Callable[[], bool]
    ) -> None:
        if self.store.present_size(ref.name) is not None and self._verify_present(tracker, ref):
            return
        want = self.origins.wanted(ref)

        def stop() -> bool:
            return (should_stop() and not tracker.asked_now) or self._closed.is_set()

        failed = 0  # tries in a row that took the partial file no further
        furthest = self.store.partial_size(ref.name)
        while True:
            try:
                fetch(self.store, want, self.bucket, tracker, stop, self.conf.timeout_s)
            except TowerboxError as err:
                if not _worth_retrying(err):
                    raise
                # A long transfer may be cut many times; only tries in a row that did not
                # take the file further count (a server ignoring ranges starts over).
                reached = self.store.partial_size(ref.name)
                failed = 1 if reached > furthest else failed + 1
                furthest = max(furthest, reached)
                if failed > self.conf.retries or stop():
                    raise
                wait = min(self.conf.retry_wait_s * 2 ** (failed - 1), _RETRY_WAIT_MAX_S)
                log.warning(
                    "%s; trying again in %.1f s (%d of %d)",
                    err.message,
                    wait,
                    failed,
                    self.conf.retries,
                    extra={"artifact": ref.name},
                )
                end = time.monotonic() + wait
                while not stop() and time.monotonic() < end:
                    time.sleep(min(0.1, wait))
                if stop():
                    raise FetchPaused(
                        f"artifact {ref.name}: paused while waiting to try again",
                        artifact=ref.name,
                    ) from err
            else:
                self._remember(ref)
                return

    def _verify_present(self, tracker: FetchTracker, ref: ArtifactRef) -> bool:
        """A file already in the folder: keep it when its hash is right, else quarantine."""
        path = self.store.path(ref.name)
        tracker.verifying()
        if self.is_verified(ref.name, ref.sha256) or file_sha256(path) == ref.sha256:
            size = path.stat().st_size
            tracker.started(size, size)
            self._remember(ref)
            return True
        where = self.store.quarantine(path, ref.name)
        log.warning(
            "artifact %s: the file on disk has the wrong hash; moved to %s", ref.name, where
        )
        return False

    def _remember(self, ref: ArtifactRef) -> None:
        st = os.stat(self.store.path(ref.name))
        proof = (st.st_ino, st.st_size, st.st_mtime_ns, ref.sha256)
        with self._lock:  # saved in order: the newest proofs are the ones kept
            if self._verified.get(ref.name) == proof:
                return
            self._verified[ref.name] = proof
            if self._closed.is_set():  # the daemon is stopping; the database may be gone
                return
            try:
                artifact_verified.save(self._verified)
            except TowerboxError as err:  # the file is good; only the next start re-hashes
                log.warning("verified %s, not kept for the next start: %s", ref.name, err.message)

    def _journal(
        self, name: str, kind: str, state: dict[str, Any], *, settled: bool = False
    ) -> None:
        if self._closed.is_set():
            return  # the daemon is stopping; the database may be gone
        with journal.write_transaction():
            journal.append(kind, "artifact", name, state)
            if settled:
                artifact_intents.settle(name)

    def close(self) -> None:
        """Stop the fetches (their partial files stay for the next start) and the pool."""
        self._closed.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _worth_retrying(err: TowerboxError) -> bool:
    """A cut transfer, or an origin that answers it is unavailable for now (the
    registry's relay restarting, a proxy's 502/503/504)."""
    return (
        err.code == INTERRUPTED
        or isinstance(err, BackendUnavailable)
        or (err.extra.get("http_status") in (502, 503, 504))
    )
