"""Writing and hashing a download on a thread of its own, so both overlap the network.

File writes and hashlib release the GIL: the fetch's thread receives while this one
writes and hashes what came before, through a bounded queue (a slow disk holds the
download back instead of filling memory). Every ``_WRITEBACK`` bytes the written range
is handed to the kernel's writeback, so the fsync before the rename has little left.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import BinaryIO, Protocol

_QUEUE_CHUNKS = 64  # of up to 1 MiB each
_WRITEBACK = 32 << 20


class Hash(Protocol):
    def update(self, chunk: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class WriteBehind:
    def __init__(self, f: BinaryIO, hasher: Hash) -> None:
        self._f = f
        self._hash = hasher
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._error: OSError | None = None
        self._closed = False
        self._start = f.tell()
        self._thread = threading.Thread(target=self._run, name="artifact-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        synced = self._start
        written = self._start
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining: the receiver must never block on a dead writer
            try:
                self._f.write(chunk)
                self._hash.update(chunk)
                written += len(chunk)
                if written - synced >= _WRITEBACK:
                    self._f.flush()
                    # Starts writeback of the range and drops it from the page cache.
                    os.posix_fadvise(self._f.fileno(), synced, 0, os.POSIX_FADV_DONTNEED)
                    synced = written
            except OSError as err:
                self._error = err

    def put(self, chunk: bytes) -> None:
        """Queue a chunk; raises the writer's error (a full disk) as soon as it has one."""
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def close(self) -> None:
        """Write what is queued and stop the thread (idempotent); call it on every path."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> str:
        """Everything written: flushed, its hex SHA-256; raises the writer's error."""
        self.close()
        if self._error is not None:
            raise self._error
        self._f.flush()
        return self._hash.hexdigest()
