"""A full disk, however it reaches the edge, is a 507 storage_full, not a 500."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from tests.unit.test_store_busy_problem import REQUEST, wrapped
from towerbox_core import problems
from towerbox_core.errors import is_disk_full, is_lock_contention


def test_a_full_disk_outside_the_store_is_a_507_without_retry_after() -> None:
    resp = problems.internal_error(REQUEST, wrapped("database or disk is full"))
    assert resp.status_code == 507
    assert resp.content["code"] == "storage_full"
    assert "Retry-After" not in resp.headers
    enospc = OSError(errno.ENOSPC, "No space left on device", "/var/lib/towerbox/x")
    assert problems.internal_error(REQUEST, enospc).status_code == 507


@pytest.mark.parametrize(
    ("exc", "full"),
    [
        (sqlite3.OperationalError("database or disk is full"), True),
        (wrapped("database or disk is full"), True),
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (wrapped("disk I/O error"), False),
        (RuntimeError("database or disk is full"), False),
    ],
)
def test_only_a_full_disk_counts(exc: Exception, full: bool) -> None:
    assert is_disk_full(exc) is full
    assert not is_lock_contention(exc)
    if not full:
        assert problems.internal_error(REQUEST, exc).status_code == 500
