"""The frame on every page: node name, health, backend badges, WAN banner, navigation."""

from __future__ import annotations

import contextlib
from typing import Any

from nicegui import ui

from ui import session, wan
from ui.alerts import AlertsMenu
from ui.api import ApiError
from ui.deps import Deps
from ui.handles import tag
from ui.live import SYNCED, Change, LiveFeed, about
from ui.session import UserApi
from ui.theme import BANNER_CLASSES, nav_for


def badges_from(health: dict[str, Any]) -> list[str]:
    """The backend lines /healthz gives, e.g. "GPU: simulated H100 80GB x1 (...)"."""
    backends = health.get("backends") or {}
    lines: list[str] = []
    for key in ("gpu", "libvirt"):
        summary = (backends.get(key) or {}).get("summary")
        if summary:
            lines.append(str(summary))
    n6 = (backends.get("n6") or {}).get("summary") or []
    lines.extend(str(line) for line in n6)
    return lines


def short_badge(line: str) -> str:
    # The reason in brackets stays in the tooltip; the badge keeps what it is.
    head, _, _ = line.partition(" (")
    return head


class Frame:
    def __init__(self, deps: Deps, user: UserApi, active: str) -> None:
        self.deps = deps
        self.user = user
        self._last_banner: wan.Banner | None = None
        self._last_badges: list[str] | None = None
        # The page's parts refresh on the appliance's events (see ui.live).
        self.live = LiveFeed(deps.api.base_url, user.session.token)
        with ui.header(elevated=True).classes("bg-slate-800 text-white items-center gap-3 py-2"):
            ui.link("Towerbox", "/").classes("text-lg font-bold text-white no-underline")
            self.node = tag(ui.label("").classes("text-lg"), "node-name")
            self.health = tag(ui.badge("…", color="grey"), "health")
            self.badge_row = ui.row().classes("gap-1 items-center")
            self.mode = tag(ui.label("polling").classes("text-xs text-grey-5"), "live-mode")
            self.mode.tooltip("live: pages change as the node does; polling: stream down")
            self.live.on_mode(self._show_mode)
            ui.space()
            with ui.element("nav").props('aria-label="Main"').classes("flex gap-3"):
                for key, text, path in nav_for(user.session.infra_admin):
                    link = ui.link(text, path).classes("text-white")
                    if key == active:
                        link.classes("font-bold underline").props('aria-current="page"')
            self.alerts = AlertsMenu(user)
            who = user.session
            ui.label(f"{who.username} ({who.role}{', ' + who.tenant if who.tenant else ''})")
            ui.button("Log out", on_click=self.logout).props("flat dense color=white")
        self.banner = tag(ui.label("Sync: …").classes("w-full px-4 py-1 text-sm"), "wan-banner")
        self.banner.props('role="status" aria-live="polite"')
        self.content = ui.column().classes("w-full p-4 gap-4")
        # Opened while the page loads its data, so it is up by the time a change comes.
        self.live.start()

    def start(self) -> None:
        """Follow the stream once the page is built, as its parts do: an alert's journal
        entry refreshes the alerts, a ``sync`` event the WAN banner, at once. Health,
        alerts and banner are polled every frame_poll_s while the stream is down (the
        appliance may be gone), and slowly while it is live: an agent that falls silent
        sends no event."""
        self.live.watch(
            self.refresh,
            self.deps.settings.frame_poll_s,
            about("alert"),
            on_change=self._changed,
            synced=True,
        )

    async def _changed(self, change: Change) -> None:
        if change.kind == SYNCED:
            await self._refresh_banner(since=change.heard)
        else:
            await self.alerts.refresh(since=change.heard)

    def _show_mode(self, live: bool) -> None:
        self.mode.text = "live" if live else "polling"

    async def refresh(self) -> None:
        try:
            health = await self.deps.api.health()
        except ApiError as err:
            self._show_down(err)
            return
        self.node.text = str(health.get("node", "?"))
        ok = health.get("status") == "ok"
        self.health.text = "healthy" if ok else str(health.get("status", "?"))
        self.health.props(f"color={'positive' if ok else 'negative'}")
        lines = badges_from(health)
        if lines != self._last_badges:
            self._last_badges = lines
            self.badge_row.clear()
            with self.badge_row:
                for line in lines:
                    with ui.badge(short_badge(line), color="blue-grey-6").classes("text-xs"):
                        ui.tooltip(line)
        await self.alerts.refresh()
        await self._refresh_banner()

    async def _refresh_banner(self, since: float | None = None) -> None:
        try:
            status = await self.user.get_shared("/api/v1/sync/status", since)
            self._set_banner(wan.banner(status))
        except ApiError as err:
            self._set_banner(wan.banner(None, err))

    def _show_down(self, err: ApiError) -> None:
        self.health.text = "appliance unreachable"
        self.health.props("color=negative")
        self._set_banner(wan.Banner(f"Appliance unreachable: {err.text}", "offline"))

    def _set_banner(self, b: wan.Banner) -> None:
        if b == self._last_banner:
            return
        self._last_banner = b
        self.banner.text = b.text
        self.banner.classes(replace=f"w-full px-4 py-1 text-sm {BANNER_CLASSES[b.tone]}")
        self.banner.props(f'data-tone="{b.tone}"')

    async def logout(self) -> None:
        # The token is forgotten here either way; on the appliance it expires.
        with contextlib.suppress(ApiError):
            await self.user.call("POST", "/api/v1/auth/logout")
        session.sign_out()
        ui.navigate.to("/login")


async def build_frame(deps: Deps, user: UserApi, active: str) -> Frame:
    frame = Frame(deps, user, active)
    await frame.refresh()
    return frame
