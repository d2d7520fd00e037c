"""The registry's own problem codes, on the project's error classes (towerbox_core.errors)."""

from __future__ import annotations

from towerbox_core.errors import Conflict, TowerboxError


class BadRequest(TowerboxError):
    """Malformed input: bad gzip, bad JSON, entries out of order; fix the sender."""

    code = "bad_request"
    status = 400


class PayloadTooLarge(TowerboxError):
    code = "batch_too_large"
    status = 413


class PreconditionFailed(TowerboxError):
    """If-Match named a version that is no longer the current one."""

    code = "precondition_failed"
    status = 412


class SequenceGap(Conflict):
    code = "sequence_gap"


class JournalConflict(Conflict):
    code = "journal_conflict"
