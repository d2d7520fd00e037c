"""What can go wrong on each side, sorted by what the agent does about it."""

from __future__ import annotations

from typing import Any

from towerbox_core.errors import TowerboxError


class Unreachable(TowerboxError):
    """Transient: the link is down, slow or the far end answered 5xx. Retry later."""

    code = "unreachable"
    status = 503

    def __init__(self, where: str, message: str, problem_code: str | None = None) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.problem_code = problem_code  # the far end's code, when it answered one


class Refused(TowerboxError):
    """The far end answered a problem (4xx): carries its status and code."""

    def __init__(self, where: str, status: int, problem: dict[str, Any]) -> None:
        code = str(problem.get("code", "http_error"))
        detail = str(problem.get("detail", ""))
        super().__init__(f"{where} refused ({status} {code}): {detail}", code=code)
        self.where = where
        self.status = status
        self.problem = problem


class SequenceGap(Refused):
    """The registry holds less than we thought: resume from its head."""
