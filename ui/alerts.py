"""The frame's alerts: a badge with the firing alerts by severity on every page, and a
menu listing each one (object, since when, what is wrong, what to do) with Ack."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from ui.api import ApiError
from ui.fmt import when
from ui.handles import tag
from ui.session import UserApi, notify_error

SEVERITIES = ("critical", "warning", "info")
_COLORS = {"critical": "negative", "warning": "warning", "info": "info"}


def badge_text(firing: dict[str, int]) -> str:
    """ "2 critical · 1 warning", or "no alerts"."""
    parts = [f"{firing[s]} {s}" for s in SEVERITIES if firing.get(s)]
    return " · ".join(parts) if parts else "no alerts"


def badge_color(firing: dict[str, int]) -> str:
    worst = next((s for s in SEVERITIES if firing.get(s)), None)
    return _COLORS[worst] if worst else "positive"


class AlertsMenu:
    """Built inside the frame's header; ``refresh`` is called on each frame refresh."""

    def __init__(self, user: UserApi) -> None:
        self.user = user
        self._shown: Any = None
        with tag(ui.button("Alerts", icon="notifications"), "alerts-button").props(
            "flat dense color=white no-caps"
        ):
            self.badge = tag(ui.badge("…", color="grey"), "alerts-badge").props("floating")
            with ui.menu().classes("p-2") as self.menu:
                self.items = tag(ui.column().classes("gap-2 w-[32rem]"), "alerts-list")

    async def refresh(self, fresh: bool = False, since: float | None = None) -> None:
        """The frame polls this on every open page: one read serves them all, except
        right after this page changed an alert (``fresh``); pages told of an alert's
        change at ``since`` share one read made after it."""
        try:
            if fresh:
                answer = await self.user.get("/api/v1/alerts")
            else:
                answer = await self.user.get_shared("/api/v1/alerts", since)
        except ApiError:
            return  # the frame's health badge and banner already say the node is away
        if answer == self._shown:
            return
        self._shown = answer
        firing = answer.get("firing", {})
        self.badge.text = badge_text(firing)
        self.badge.props(f"color={badge_color(firing)}")
        self.items.clear()
        with self.items:
            if not answer["alerts"]:
                ui.label("No alerts are firing.")
            for alert in answer["alerts"]:
                self._item(alert)

    def _item(self, alert: dict[str, Any]) -> None:
        with tag(ui.card().classes("w-full p-2 gap-1"), f"alert-{alert['id']}"):
            with ui.row().classes("items-center gap-2"):
                ui.badge(alert["severity"], color=_COLORS.get(alert["severity"], "grey"))
                ui.label(alert["object"]).classes("font-mono")
                ui.label(f"since {when(alert['since'])}").classes("text-xs text-gray-600")
            ui.label(alert["message"])
            ui.label(alert["runbook"]).classes("text-sm text-gray-700")
            if alert.get("acked_by"):
                ui.label(f"acknowledged by {alert['acked_by']}").classes("text-xs")
            else:
                ui.button("Ack", on_click=lambda a=alert: self.ack(a)).props("dense outline")

    async def ack(self, alert: dict[str, Any]) -> None:
        try:
            await self.user.post(f"/api/v1/alerts/{alert['id']}/ack")
        except ApiError as err:
            notify_error(err, f"Acknowledging {alert['rule']} on {alert['object']}")
            return
        ui.notify(f"Acknowledged {alert['rule']} on {alert['object']}", type="positive")
        await self.refresh(fresh=True)
