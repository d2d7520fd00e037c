"""Alerts the node evaluates: the API's answers (GET /api/v1/alerts, ack)."""

from __future__ import annotations

import msgspec


class AlertView(msgspec.Struct, frozen=True):
    id: int
    rule: str
    object: str  # "vm:<name>", "gpu:<uuid>", "hugepages:node<n>:<size>", "job:<id>", "node"
    severity: str  # critical | warning | info
    state: str  # firing | resolved
    summary: str
    message: str  # what is wrong, with the figures
    runbook: str  # what the operator does
    since: str  # ISO time the condition was first seen
    fired_at: str | None = None
    resolved_at: str | None = None
    tenant: str | None = None  # whose object it is; None: the node's
    acked_by: str | None = None
    acked_at: str | None = None


class AlertList(msgspec.Struct, frozen=True):
    alerts: list[AlertView]
    # Firing alerts by severity (of those the caller may see).
    firing: dict[str, int]
