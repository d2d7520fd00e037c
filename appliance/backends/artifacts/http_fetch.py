"""Fetch one artifact over HTTP(S) into the store: resumable, capped, verified.

A partial file from an earlier, cut transfer is resumed with a Range request; the
server's answer is believed only when it is a 206 whose Content-Range starts where
the partial file ends (and, when known, ends where the artifact ends). Anything else
starts over. Network failures stop here and become the project's errors.

The body is read straight into the write-behind's buffers (one copy from the socket);
the buffers are written with direct I/O and hashed on threads of their own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from appliance.backends.artifacts.bandwidth import TokenBucket
from appliance.backends.artifacts.http_source import Body, SourceError, open_body
from appliance.backends.artifacts.store import ArtifactStore, filled_up
from appliance.backends.artifacts.write_behind import WriteBehind
from towerbox_core.errors import BackendError, BackendUnavailable, TowerboxError, is_disk_full
from towerbox_core.faults import fault_point

log = logging.getLogger(__name__)

_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_HASH_CHUNK = 1 << 20
# A buffer fills in several reads (each takes what has arrived, up to _MAX_READ), each
# followed by a look at the stop flag, the cap and progress.
_MAX_READ = 1 << 20
# A buffer that fills slowly goes to disk after this long, full or not: what a slow
# link brought is in the partial file (and counts for a resume) within a second.
_HAND_IN_S = 0.5
INTERRUPTED = "artifact_fetch_interrupted"
HASH_MISMATCH = "artifact_hash_mismatch"


class FetchPaused(TowerboxError):
    """The fetch was asked to stop (its window closed); the partial file stays."""

    code = "artifact_fetch_paused"
    status = 409


class Listener(Protocol):
    def started(self, done: int, total: int | None) -> None: ...
    def advanced(self, n: int) -> None: ...
    def verifying(self) -> None: ...


@dataclass(frozen=True)
class Wanted:
    name: str
    url: str
    sha256: str
    size: int | None
    # Over this unix socket instead of TCP: the edge agent's blob relay, which takes a
    # fleet registry blob's requests to the registry (the appliance has no WAN).
    socket: str | None = None


@dataclass(frozen=True)
class Fetched:
    transferred: int  # bytes that came over the network in this call
    resumed_from: int  # bytes the partial file already held


def fetch(
    store: ArtifactStore,
    want: Wanted,
    bucket: TokenBucket,
    listener: Listener,
    should_stop: Callable[[], bool] = lambda: False,
    timeout_s: float = 30.0,
) -> Fetched:
    """Download ``want`` into the store and publish it once its hash matches."""
    if want.size is not None and store.partial_size(want.name) > want.size:
        store.discard_partial(want.name)
    resumed = store.partial_size(want.name)
    if want.size is not None:
        store.require_space(want.size - resumed, want.name)
    if resumed and resumed == want.size:
        return _publish_complete_partial(store, want, listener, resumed)
    try:
        return _transfer(store, want, bucket, listener, should_stop, resumed, timeout_s)
    except _StartOver:
        store.discard_partial(want.name)
        return _transfer(store, want, bucket, listener, should_stop, 0, timeout_s)


def _publish_complete_partial(
    store: ArtifactStore, want: Wanted, listener: Listener, size: int
) -> Fetched:
    """A partial file that already holds every byte (cut before its rename)."""
    listener.started(size, size)
    listener.verifying()
    hasher = hashlib.sha256()
    _hash_file(store.partial(want.name), hasher)
    if hasher.hexdigest() != want.sha256:
        store.discard_partial(want.name)
        raise BackendUnavailable(
            f"artifact {want.name}: the kept partial file is not the artifact; fetch again",
            code=INTERRUPTED,
            artifact=want.name,
        )
    with store.partial(want.name).open("ab") as f:
        store.publish(want.name, f)
    return Fetched(transferred=0, resumed_from=size)


class _StartOver(Exception):
    """The server did not honour the range: fetch the whole file again."""


def _transfer(
    store: ArtifactStore,
    want: Wanted,
    bucket: TokenBucket,
    listener: Listener,
    should_stop: Callable[[], bool],
    have: int,
    timeout_s: float,
) -> Fetched:
    headers = {"Accept-Encoding": "identity", "User-Agent": "towerbox-appliance"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with open_body(want.url, headers, timeout_s, want.socket) as body:
            total = _expected_total(body, want, have)
            if total is not None and want.size is None:
                store.require_space(total - have, want.name)
            hasher = hashlib.sha256()
            if have:
                _hash_file(store.partial(want.name), hasher)
            listener.started(have, total)
            with store.open_partial(want.name, keep=bool(have)) as f:
                sink = WriteBehind(store.partial(want.name), have, hasher)
                try:
                    got = _copy(body, sink, bucket, listener, should_stop, want.name)
                except (FetchPaused, SourceError):
                    sink.close()  # what was received is on disk, even when paused
                    if isinstance(sink.error, OSError):
                        raise sink.error from None  # a disk that filled meanwhile wins
                    raise
                finally:
                    sink.close()
                listener.verifying()
                digest = sink.finish()
                if total is not None and have + got != total:
                    raise BackendUnavailable(
                        f"artifact {want.name}: the transfer ended at {have + got} of "
                        f"{total} bytes",
                        code=INTERRUPTED,
                        artifact=want.name,
                    )
                if digest != want.sha256:
                    f.close()
                    where = store.quarantine(store.partial(want.name), want.name)
                    raise BackendError(
                        f"artifact {want.name}: sha256 mismatch: expected {want.sha256}, got "
                        f"{digest}; the file is quarantined as {where.name}",
                        code=HASH_MISMATCH,
                        artifact=want.name,
                        expected=want.sha256,
                        got=digest,
                        quarantined=str(where),
                    )
                fault_point("artifact.fetch.before_publish")
                store.publish(want.name, f)
            return Fetched(transferred=got, resumed_from=have)
    except SourceError as err:
        raise BackendUnavailable(
            f"artifact {want.name}: transfer from {_host(want.url)} failed: {err}",
            code=INTERRUPTED,
            artifact=want.name,
        ) from err
    except OSError as err:
        if is_disk_full(err):
            # A disk that filled mid-transfer leaves nothing behind, not even a partial.
            store.discard_partial(want.name)
            raise filled_up(want.name, store.free_bytes(), want.size) from err
        raise


def _expected_total(resp: Body, want: Wanted, have: int) -> int | None:
    """The artifact's full size per the server; refuses a range it did not honour."""
    if have and resp.status == 206:
        m = _CONTENT_RANGE_RE.match(resp.header("content-range") or "")
        if m is None or int(m.group(1)) != have:
            raise _StartOver
        total = None if m.group(3) == "*" else int(m.group(3))
        if want.size is not None and total not in (None, want.size):
            raise _StartOver
        return total if total is not None else want.size
    if have and resp.status in (200, 416):
        # 200: the server ignores ranges; 416: the partial file is not a prefix it knows.
        raise _StartOver
    if resp.status != 200:
        _raise_problem(resp, want)
        raise BackendError(
            f"artifact {want.name}: {_host(want.url)} answered HTTP {resp.status}",
            code="artifact_source_error",
            artifact=want.name,
            http_status=resp.status,
        )
    length = resp.header("content-length")
    if length is not None and length.isdigit():
        return int(length)
    return want.size


def _raise_problem(resp: Body, want: Wanted) -> None:
    """A problem answer from the agent's relay (or the registry behind it) keeps its
    code: ``artifact_origin_unavailable``, ``blob_not_found`` say more than a status.
    Any other server's error body is not ours to interpret."""
    if want.socket is None or "json" not in (resp.header("content-type") or ""):
        return
    try:
        problem = json.loads(resp.read(16384))
    except (ValueError, SourceError):
        return
    if not isinstance(problem, dict) or not isinstance(problem.get("code"), str):
        return
    error = BackendUnavailable if resp.status in (502, 503, 504) else BackendError
    raise error(
        f"artifact {want.name}: {_host(want.url)} answered HTTP {resp.status}: "
        f"{problem.get('detail', '')}",
        code=problem["code"],
        artifact=want.name,
        http_status=resp.status,
    )


def _copy(
    body: Body,
    sink: WriteBehind,
    bucket: TokenBucket,
    listener: Listener,
    should_stop: Callable[[], bool],
    name: str,
) -> int:
    got = 0
    # Under a cap a read takes at most a burst, so the bucket paces it smoothly.
    most = min(_MAX_READ, bucket.burst) if bucket.rate > 0 else _MAX_READ
    while True:
        buf = sink.buffer()
        filled = 0
        began = time.monotonic()
        try:
            while filled < len(buf):
                n = body.readinto(buf[filled : filled + most])
                if n == 0:
                    return got
                # Checked before and after the wait: no byte is kept once the fetch must
                # stop (the ones read here are dropped; the ones before are written).
                if should_stop() or not bucket.take(n, should_stop) or should_stop():
                    raise FetchPaused(f"artifact {name}: paused at {got} bytes", artifact=name)
                filled += n
                got += n
                fault_point("artifact.fetch.chunk")
                listener.advanced(n)
                if time.monotonic() - began > _HAND_IN_S:
                    break
        finally:
            sink.put(buf, filled)  # what was received is written, also on a cut or a stop


class _Hasher(Protocol):
    def update(self, chunk: bytes, /) -> None: ...


def _hash_file(path: Path, hasher: _Hasher) -> None:
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            hasher.update(chunk)


def _host(url: str) -> str:
    return urlsplit(url).hostname or url
