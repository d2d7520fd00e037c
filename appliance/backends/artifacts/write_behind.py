"""Writing and hashing a download on threads of their own, so both overlap the network.

The receiving thread fills buffers from a small pool; a writer thread writes each one
to the file and a hash thread hashes it, then the buffer goes back to the pool (a slow
disk holds the download back instead of filling memory). File writes and hashlib
release the GIL, so the three run at once.

The writer uses direct I/O (``O_DIRECT``) where the filesystem takes it: a model
bundle of gigabytes goes from the buffer to the disk without being copied into the
page cache, where it would only push out what the node's VMs read, and the fsync
before the rename has nothing left to write. Direct I/O needs offsets and lengths on a
block boundary: the pool's buffers are page-aligned, the first buffer of a resumed
transfer is cut short so that the ones after it start on a boundary, and the last,
short one goes through the page cache. One writer, in order: a crash leaves the
partial file a prefix of the artifact, never a file with a hole in it.
"""

from __future__ import annotations

import errno
import mmap
import os
import queue
import threading
from pathlib import Path
from typing import Protocol

CHUNK = 2 << 20
_BUFFERS = 8
_ALIGN = 4096  # the largest logical block size a disk asks direct I/O to respect
_WRITEBACK = 32 << 20  # through the page cache: start writeback this often
_NO_DIRECT_IO = frozenset({errno.EINVAL, errno.EOPNOTSUPP})


class Hash(Protocol):
    def update(self, chunk: bytes | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


class WriteBehind:
    """Appends to ``path`` from byte ``start`` on, and hashes what it writes."""

    def __init__(self, path: Path, start: int, hasher: Hash) -> None:
        self._hash = hasher
        self._offset = start  # where the next buffer handed in goes
        self._error: Exception | None = None
        self._closed = False
        self._to_write: queue.Queue[tuple[memoryview, int] | None] = queue.Queue()
        self._to_hash: queue.Queue[memoryview | None] = queue.Queue()
        self._free: queue.Queue[memoryview] = queue.Queue()
        self._unsynced = 0
        self._cached_unsynced = False  # page-cache writes no fdatasync has covered yet
        self._fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        self._direct: int | None = None
        try:
            self._direct = _open_direct(path)
            for _ in range(_BUFFERS):
                self._free.put(memoryview(mmap.mmap(-1, CHUNK)))
        except BaseException:
            self._close_files()
            raise
        self._writer = threading.Thread(target=self._write_all, name="artifact-write", daemon=True)
        self._hasher = threading.Thread(target=self._hash_all, name="artifact-hash", daemon=True)
        self._hasher.start()  # first: a writer never runs without a hasher to feed
        self._writer.start()

    @property
    def error(self) -> Exception | None:
        """What stopped the writing (a full disk) or the hashing, if anything did."""
        return self._error

    def buffer(self) -> memoryview:
        """A free buffer to fill; its length keeps the next one on a block boundary.

        Raises the writer's error (a full disk) as soon as it has one."""
        self._raise_error()
        buf = self._free.get()
        self._raise_error()
        misaligned = self._offset % _ALIGN
        return buf[: CHUNK - misaligned]

    def put(self, buf: memoryview, n: int) -> None:
        """Hand in the first ``n`` bytes of a buffer from :meth:`buffer` (0: unused)."""
        if n == 0:
            self._free.put(_whole(buf))
            return
        self._to_write.put((buf[:n], self._offset))
        self._offset += n

    def close(self) -> None:
        """Write what was handed in and stop the threads (idempotent); call it on every
        path, so that what was received is in the file even when the fetch stops."""
        if self._closed:
            return
        self._closed = True
        self._to_write.put(None)
        self._writer.join()
        self._hasher.join()
        self._close_files()

    def finish(self) -> str:
        """Everything written; its hex SHA-256. Raises the writer's error."""
        self.close()
        self._raise_error()
        return self._hash.hexdigest()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _close_files(self) -> None:
        os.close(self._fd)
        if self._direct is not None:
            os.close(self._direct)

    def _write_all(self) -> None:
        while (item := self._to_write.get()) is not None:
            view, offset = item
            if self._error is None:
                try:
                    self._write(view, offset)
                except Exception as err:  # kept for the receiver, which raises it
                    self._error = err
            if self._error is None:
                self._to_hash.put(view)
            else:
                # The hash no longer matters: the buffer goes back at once, so the
                # receiver never waits on a writer that has given up.
                self._free.put(_whole(view))
        self._to_hash.put(None)

    def _hash_all(self) -> None:
        while (view := self._to_hash.get()) is not None:
            try:
                if self._error is None:
                    self._hash.update(view)
            except Exception as err:  # kept for the receiver, like the writer's
                self._error = err
            finally:
                self._free.put(_whole(view))  # the receiver never waits on a dead hash

    def _write(self, view: memoryview, offset: int) -> None:
        direct = len(view) - len(view) % _ALIGN if offset % _ALIGN == 0 else 0
        if direct and self._direct is not None:
            if self._cached_unsynced:
                # A direct write past page-cache writes moves the file's end beyond
                # them on disk at once; a power cut before their writeback would
                # leave a hole of zeros where they go. They go to disk first.
                os.fdatasync(self._fd)
                self._cached_unsynced = False
            try:
                _pwrite_all(self._direct, view[:direct], offset)
                view, offset = view[direct:], offset + direct
            except OSError as err:
                if err.errno not in _NO_DIRECT_IO:
                    raise
                # The filesystem refused direct I/O after all: the page cache from now on.
                os.close(self._direct)
                self._direct = None
        if view:
            _pwrite_all(self._fd, view, offset)
            self._cached_unsynced = True
            self._unsynced += len(view)
            if self._unsynced >= _WRITEBACK:
                # Starts writeback of what was written and drops it from the page cache.
                os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_DONTNEED)
                self._unsynced = 0


def _whole(view: memoryview) -> memoryview:
    """The pool buffer a slice of it was cut from."""
    return memoryview(view.obj)


def _open_direct(path: Path) -> int | None:
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_DIRECT)
    except OSError as err:
        if err.errno in _NO_DIRECT_IO:  # tmpfs before Linux 6.6, some network filesystems
            return None
        raise


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        if n == 0:
            raise OSError(errno.EIO, "the file took no bytes")
        view, offset = view[n:], offset + n
