"""A locked database, however it reaches the edge, is a 503 store_busy, not a 500."""

from __future__ import annotations

import sqlite3
from typing import Any, cast

import peewee
import pytest
from litestar import Request

from towerbox_core import problems
from towerbox_core.errors import is_lock_contention


def wrapped(message: str) -> Exception:
    """As peewee raises it: its own OperationalError, while handling sqlite3's."""
    err = peewee.OperationalError(message)
    err.__context__ = sqlite3.OperationalError(message)
    return err


REQUEST = cast(Request[Any, Any, Any], None)  # the handlers do not read it


def test_a_locked_database_outside_the_store_is_a_503_with_retry_after() -> None:
    resp = problems.internal_error(REQUEST, wrapped("database is locked"))
    assert resp.status_code == 503
    assert resp.content["code"] == "store_busy"
    assert resp.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("exc", "busy"),
    [
        (sqlite3.OperationalError("database is locked"), True),
        (wrapped("database table is locked"), True),
        (wrapped("no such table: vm"), False),
        (RuntimeError("database is locked"), False),
    ],
)
def test_only_lock_contention_counts(exc: Exception, busy: bool) -> None:
    assert is_lock_contention(exc) is busy
    if not busy:
        assert problems.internal_error(REQUEST, exc).status_code == 500
