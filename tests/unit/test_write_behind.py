"""The write-behind writes what it is handed, in order, at the right offsets, hashes
it, and gives up cleanly: with direct I/O and without, from an unaligned start, and
when the disk refuses a write."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from appliance.backends.artifacts import write_behind
from appliance.backends.artifacts.write_behind import CHUNK, WriteBehind


def _hand_in(sink: WriteBehind, data: bytes) -> list[int]:
    """Feeds ``data`` through the sink's buffers as a receiver does; the buffer sizes."""
    sizes = []
    at = 0
    while at < len(data):
        buf = sink.buffer()
        sizes.append(len(buf))
        n = min(len(buf), len(data) - at)
        buf[:n] = data[at : at + n]
        sink.put(buf, n)
        at += n
    return sizes


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "page-cache"])
def test_a_resumed_file_is_appended_to_and_hashed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    if not direct:
        monkeypatch.setattr(write_behind, "_open_direct", lambda path: None)
    path = tmp_path / "partial"
    head = os.urandom(1000)  # a cut left a prefix that ends off a block boundary
    path.write_bytes(head)
    rest = os.urandom(5 * CHUNK + 12345)
    hasher = hashlib.sha256(head)
    sink = WriteBehind(path, len(head), hasher)
    sizes = _hand_in(sink, rest)
    assert sink.finish() == hashlib.sha256(head + rest).hexdigest()
    assert path.read_bytes() == head + rest
    # The first buffer is cut short so that every later one starts on a block boundary.
    assert (len(head) + sizes[0]) % 4096 == 0 and sizes[1:] == [CHUNK] * (len(sizes) - 1)


def test_an_unused_buffer_goes_back_and_close_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "partial"
    path.touch()
    sink = WriteBehind(path, 0, hashlib.sha256())
    for _ in range(3 * 8):  # more than the pool holds: each went back
        sink.put(sink.buffer(), 0)
    sink.close()
    sink.close()
    assert sink.finish() == hashlib.sha256().hexdigest() and path.read_bytes() == b""


def test_a_refused_write_reaches_the_receiver_and_never_blocks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "partial"
    path.touch()

    def full(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    sink = WriteBehind(path, 0, hashlib.sha256())
    with pytest.raises(OSError, match="No space") as refused:
        _hand_in(sink, os.urandom(20 * CHUNK))  # more than the pool: buffers came back
    assert refused.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="No space"):
        sink.finish()


def test_a_failed_hash_reaches_the_receiver_and_never_blocks_it(tmp_path: Path) -> None:
    path = tmp_path / "partial"
    path.touch()

    class Broken:
        def update(self, chunk: bytes | memoryview, /) -> None:
            raise MemoryError("no memory for the hash")

        def hexdigest(self) -> str:
            return "never"

    sink = WriteBehind(path, 0, Broken())
    with pytest.raises(MemoryError):
        _hand_in(sink, os.urandom(20 * CHUNK))  # more than the pool: buffers came back
    with pytest.raises(MemoryError):
        sink.finish()


def test_page_cache_writes_reach_the_disk_before_a_direct_write_passes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else a power cut could keep the direct write and the file's new end, and lose
    the cached range before it: a hole of zeros inside the partial file."""
    path = tmp_path / "partial"
    path.write_bytes(b"x" * 1000)
    order: list[str] = []
    pwrite, fdatasync = os.pwrite, os.fdatasync

    def recorded_pwrite(fd: int, data: memoryview, offset: int) -> int:
        order.append(f"write {offset}")
        return pwrite(fd, data, offset)

    def recorded_sync(fd: int) -> None:
        order.append("sync")
        fdatasync(fd)

    monkeypatch.setattr(os, "pwrite", recorded_pwrite)
    monkeypatch.setattr(os, "fdatasync", recorded_sync)
    sink = WriteBehind(path, 1000, hashlib.sha256())
    _hand_in(sink, os.urandom(2 * CHUNK))
    sink.finish()
    first = CHUNK - 1000 % 4096  # the unaligned head, through the page cache
    assert order[:3] == ["write 1000", "sync", f"write {1000 + first}"]
