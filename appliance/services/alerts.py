"""Alerts: the rules evaluated on the node's readings, their instances kept in the
state database, and each firing, resolving and acknowledgement journalled.

A condition first seen is ``pending``; it fires once it has held for its rule's
``for`` duration, and resolves when it no longer holds (a pending one is dropped).
Instances live in the database, so a restarted daemon carries on where it was:
nothing fires twice, and a pending condition keeps its start.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from contextlib import nullcontext

from appliance.domain.alerts.readings import NodeReadings
from appliance.domain.alerts.rules import RULES, RULES_BY_ID, AlertBounds, Finding, Rule
from appliance.services.auth import Principal
from appliance.store import journal
from appliance.store.models import Alert
from towerbox_core.api.alerts import AlertList, AlertView
from towerbox_core.errors import Conflict, NotFound

log = logging.getLogger(__name__)

PENDING, FIRING, RESOLVED = "pending", "firing", "resolved"
_RECENT_LIMIT = 500  # resolved alerts listed by ?all, newest first


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")


def _view(row: Alert) -> AlertView:
    rule = RULES_BY_ID.get(row.rule)
    return AlertView(
        id=row.id,
        rule=row.rule,
        object=row.object,
        severity=row.severity,
        state=row.status,
        summary=rule.summary if rule else row.rule,
        message=row.message,
        runbook=rule.runbook if rule else "",
        since=_iso(row.since) or "",
        fired_at=_iso(row.fired_at),
        resolved_at=_iso(row.resolved_at),
        tenant=row.tenant,
        acked_by=row.acked_by,
        acked_at=_iso(row.acked_at),
    )


def _announce(kind: str, row: Alert, **extra: object) -> None:
    journal.append(
        kind,
        "alert",
        str(row.id),
        {
            "rule": row.rule,
            "object": row.object,
            "severity": row.severity,
            "tenant": row.tenant,
            "message": row.message,
            "since": _iso(row.since),
            **extra,
        },
    )


class AlertService:
    def __init__(self, bounds: AlertBounds, rules: Iterable[Rule] = RULES) -> None:
        self.bounds = bounds
        self._rules = tuple(rules)

    def findings(self, readings: NodeReadings) -> dict[tuple[str, str], tuple[Rule, Finding]]:
        found: dict[tuple[str, str], tuple[Rule, Finding]] = {}
        for rule in self._rules:
            for finding in rule.check(readings, self.bounds):
                found.setdefault((rule.id, finding.object), (rule, finding))
        return found

    def evaluate(self, readings: NodeReadings) -> list[AlertView]:
        """One evaluation at ``readings.at``; returns the alerts that fired or resolved."""
        now = readings.at
        found = self.findings(readings)
        changed: list[Alert] = []
        # Read first, then write: one short write transaction, and none when nothing changed.
        # A few rows and entries may use the disk's reserve: the disk filling up is
        # itself what an operator must hear about.
        open_rows = list(Alert.select().where(Alert.status.in_((PENDING, FIRING))))
        writes = self._changes(open_rows, found, now)
        with journal.write_transaction(may_use_reserve=True) if writes else nullcontext():
            for row in open_rows:
                hit = found.pop((row.rule, row.object), None)
                if hit is None:
                    if row.status == FIRING:
                        row.status, row.resolved_at = RESOLVED, now
                        # Only the fields this evaluation owns: an acknowledgement
                        # may have landed since the rows were read.
                        row.save(only=[Alert.status, Alert.resolved_at])
                        _announce("alert.resolved", row, resolved_at=_iso(now))
                        changed.append(row)
                    else:
                        row.delete_instance()
                    continue
                rule, finding = hit
                if row.message != finding.message:
                    row.message = finding.message
                    row.save(only=[Alert.message])
                if row.status == PENDING and now - row.since >= rule.holds_for(self.bounds):
                    self._fire(row, now)
                    changed.append(row)
            for rule, finding in found.values():
                row = Alert.create(
                    rule=rule.id,
                    object=finding.object,
                    severity=rule.severity.value,
                    tenant=finding.tenant,
                    status=PENDING,
                    message=finding.message,
                    since=now,
                )
                if rule.holds_for(self.bounds) <= 0:
                    self._fire(row, now)
                    changed.append(row)
            keep_after = now - self.bounds.keep_resolved_days * 86400
            Alert.delete().where(
                (Alert.status == RESOLVED) & (Alert.resolved_at < keep_after)
            ).execute()
        return [_view(row) for row in changed]

    def _changes(
        self,
        open_rows: list[Alert],
        found: dict[tuple[str, str], tuple[Rule, Finding]],
        now: float,
    ) -> bool:
        """Whether an evaluation writes anything (the common case on a quiet node: no)."""
        if len(found) != len(open_rows) or any((r.rule, r.object) not in found for r in open_rows):
            return True
        for row in open_rows:
            rule, finding = found[(row.rule, row.object)]
            if row.message != finding.message:
                return True
            if row.status == PENDING and now - row.since >= rule.holds_for(self.bounds):
                return True
        resolved_before = now - self.bounds.keep_resolved_days * 86400
        return (
            Alert.select()
            .where((Alert.status == RESOLVED) & (Alert.resolved_at < resolved_before))
            .exists()
        )

    @staticmethod
    def _fire(row: Alert, now: float) -> None:
        row.status, row.fired_at = FIRING, now
        row.save(only=[Alert.status, Alert.fired_at])
        log.warning(
            "alert %s fired on %s: %s",
            row.rule,
            row.object,
            row.message,
            extra={"alert": row.rule, "object": row.object},
        )
        rule = RULES_BY_ID.get(row.rule)
        _announce("alert.fired", row, runbook=rule.runbook if rule else "")

    def active(self) -> list[AlertView]:
        """Every firing alert, whoever may see it (the metrics and the node's own views)."""
        rows = Alert.select().where(Alert.status == FIRING).order_by(Alert.id)
        return [_view(row) for row in rows]

    def list(self, principal: Principal, include_resolved: bool = False) -> AlertList:
        rows = list(Alert.select().where(Alert.status == FIRING).order_by(Alert.id))
        if include_resolved:
            rows += list(
                Alert.select()
                .where(Alert.status == RESOLVED)
                .order_by(Alert.resolved_at.desc())
                .limit(_RECENT_LIMIT)
            )
        visible = [_view(row) for row in rows if principal.can_see(row.tenant)]
        firing: dict[str, int] = {}
        for alert in visible:
            if alert.state == FIRING:
                firing[alert.severity] = firing.get(alert.severity, 0) + 1
        return AlertList(alerts=visible, firing=firing)

    def ack(self, principal: Principal, alert_id: int, now: float) -> AlertView:
        principal.require_write()
        # Read and write under the write lock: an evaluation that resolves the alert
        # meanwhile is either wholly before or wholly after.
        with journal.write_transaction():
            row = Alert.get_or_none(Alert.id == alert_id)
            if row is None or row.status == PENDING or not principal.can_see(row.tenant):
                raise NotFound(f"no alert {alert_id}", code="alert_not_found")
            if row.status != FIRING:
                raise Conflict(
                    f"alert {alert_id} ({row.rule} on {row.object}) is resolved; only a "
                    "firing alert can be acknowledged",
                    code="alert_not_firing",
                )
            if row.acked_by is None:  # acknowledged already: the first one stands
                row.acked_by, row.acked_at = principal.username, now
                row.save(only=[Alert.acked_by, Alert.acked_at])
                _announce("alert.acked", row, acked_by=principal.username)
        return _view(row)
