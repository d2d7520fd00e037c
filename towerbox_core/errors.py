"""The project's errors: each has a stable code an operator or client can match on.

Library exceptions (libvirtError, NVMLError, NetlinkError) stop at the backend that
caught them and become one of these, raised ``from`` the original. The API turns
them into RFC 9457 problem-details responses; the CLI prints code and message.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any


class TowerboxError(Exception):
    """Base of every error the project raises on purpose."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        # Extra members land in the problem document (field, allowed, vm, ...).
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        return {
            "type": f"urn:towerbox:problem:{self.code}",
            "title": self.code.replace("_", " "),
            "status": self.status,
            "detail": self.message,
            "code": self.code,
            **self.extra,
        }


class InvalidInput(TowerboxError):
    """The caller sent something malformed or out of range; fix the input."""

    code = "invalid_input"
    status = 422


class NotFound(TowerboxError):
    code = "not_found"
    status = 404


class Conflict(TowerboxError):
    """The request is valid but clashes with the node's current state."""

    code = "conflict"
    status = 409


class InsufficientResources(Conflict):
    """Valid, but the node has not enough free of something (cores, hugepages...)."""

    code = "insufficient_resources"


class Unauthorized(TowerboxError):
    code = "unauthorized"
    status = 401


class Forbidden(TowerboxError):
    code = "forbidden"
    status = 403


class BackendUnavailable(TowerboxError):
    """A backend (libvirt, NVML, netlink) cannot be reached; retry later."""

    code = "backend_unavailable"
    status = 503


class StoreBusy(TowerboxError):
    """Another writer held the state database past the busy timeout; retry shortly."""

    code = "store_busy"
    status = 503
    retry_after_s = 1


def _in_chain(exc: BaseException, matches: Callable[[BaseException], bool]) -> bool:
    """Whether ``exc``, or an error it was raised from or while handling, matches
    (peewee re-raises SQLite's errors as its own while handling the original)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            break
        if matches(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_lock_contention(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked", as raised or wrapped."""
    import sqlite3  # here: every command line imports this module and never needs it

    return _in_chain(
        exc,
        lambda e: (
            isinstance(e, sqlite3.OperationalError)
            and str(e).startswith(("database is locked", "database table is locked"))
        ),
    )


class StoreUnavailable(TowerboxError):
    """The database server is gone for now (restarting, unreachable): nothing was
    written; retry shortly. The next request connects afresh."""

    code = "store_unavailable"
    status = 503
    retry_after_s = 5


def is_store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is a lost or refused connection to the database server
    (psycopg2's OperationalError or InterfaceError, as raised or wrapped by peewee).

    Matched by the driver's class, not imported: most programs never load psycopg2.
    """
    return _in_chain(
        exc,
        lambda e: (
            type(e).__module__.startswith("psycopg2")
            and type(e).__name__ in ("OperationalError", "InterfaceError")
        ),
    )


class StorageFull(TowerboxError):
    """The disk that holds the node's state is full (or below its reserve): the write
    was refused whole and nothing was half-made. Not transient like ``StoreBusy``: it
    lasts until someone frees space, so it is 507 Insufficient Storage without a
    Retry-After; reads keep working meanwhile."""

    code = "storage_full"
    status = 507


# ENOSPC, and EDQUOT (a quota is the same wall for the writer).
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that met a full disk: SQLite's SQLITE_FULL ("database
    or disk is full", as raised or wrapped) or an OSError with ENOSPC."""
    import sqlite3  # here, as in is_lock_contention

    return _in_chain(
        exc,
        lambda e: (
            (
                isinstance(e, sqlite3.OperationalError)
                and str(e).startswith("database or disk is full")
            )
            or (isinstance(e, OSError) and e.errno in _FULL_ERRNOS)
        ),
    )


class BackendError(TowerboxError):
    """A backend refused or failed an operation it was asked to do."""

    code = "backend_error"
    status = 502


class ConfigError(TowerboxError):
    """The daemon's configuration or a catalog file is invalid; fix the file."""

    code = "config_error"
    status = 500
