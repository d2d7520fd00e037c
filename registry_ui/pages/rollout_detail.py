"""One rollout: its waves, why it halted, its failed and deferred sites, and (admins)
pause, resume, abort and roll back. The page follows the rollout while it moves."""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from registry_ui import fmt_fleet, rollout_view
from registry_ui.api import ApiError
from registry_ui.deps import Deps
from registry_ui.frame import Frame
from registry_ui.handles import tag
from registry_ui.pages.common import confirm, open_page
from registry_ui.session import OperatorApi

WAVE_COLUMNS = ("sites", "released", "applied", "healthy", "failed", "deferred")
# Failed and deferred sites are the ones an operator acts on; the rest are counts.
SITE_STATUSES = ("failed", "deferred")


class RolloutDetail:
    def __init__(self, user: OperatorApi, frame: Frame, rollout_id: int) -> None:
        self.user = user
        self.frame = frame
        self.id = rollout_id
        self._shown: Any = None
        self.title = tag(ui.label(f"Rollout #{rollout_id}").classes("text-h5"), "rollout-title")
        with ui.row().classes("items-center gap-3"):
            self.state = tag(ui.badge(""), "rollout-state")
            self.summary = tag(ui.label(""), "rollout-summary")
        self.reason = tag(ui.label("").classes("text-negative"), "rollout-reason")
        self.notice = tag(ui.label("").classes("text-negative"), "rollout-notice")
        self.notice.props('role="alert"')
        self.actions = tag(ui.row().classes("gap-2"), "rollout-actions")
        self.waves = tag(ui.column().classes("w-full gap-1"), "rollout-waves")
        ui.label("Failed and deferred sites").classes("text-h6")
        self.sites = tag(ui.column().classes("w-full gap-1"), "rollout-sites")

    async def refresh(self) -> None:
        try:
            rollout = await self.user.get(f"/api/v1/rollouts/{self.id}")
            sites = [
                await self.user.get(f"/api/v1/rollouts/{self.id}/sites", params={"status": status})
                for status in SITE_STATUSES
            ]
        except ApiError as err:
            if not self.frame.report(err):
                self.reason.text = f"Reading the rollout: {err.text}"
            return
        self.frame.show_up()
        shown = (rollout, sites)
        if shown == self._shown:
            return
        self._shown = shown
        self.draw(rollout, [s for answer in sites for s in answer["sites"]])

    def draw(self, rollout: dict[str, Any], sites: list[dict[str, Any]]) -> None:
        state = rollout["state"]
        self.title.text = (
            f"Rollout #{self.id}: {rollout['kind']} v{rollout['version']} to {rollout['group']}"
        )
        self.state.text = state
        self.state.props(f"color={rollout_view.STATE_COLOURS.get(state, 'grey-7')}")
        back = (
            f" · rolled back as v{rollout['rollback_version']}"
            if rollout["rollback_version"]
            else ""
        )
        self.summary.text = (
            f"{rollout_view.progress(rollout)} · by {rollout['created_by'] or '?'}, "
            f"{fmt_fleet.when(rollout['created_at'])}{back}"
        )
        self.reason.text = rollout["reason"] if state == "halted" else ""
        self._draw_actions(state)
        self.waves.clear()
        with self.waves:
            with ui.row().classes("w-full gap-2 font-bold"):
                for head in ("wave", "state", *WAVE_COLUMNS):
                    ui.label(head).classes("w-20")
                for head in ("started", "finished"):
                    ui.label(head).classes("w-48")
            for wave in rollout["waves"]:
                with tag(ui.row().classes("w-full gap-2"), f"wave-{wave['wave']}"):
                    ui.label(rollout_view.wave_name(wave)).classes("w-20")
                    colour = rollout_view.STATE_COLOURS.get(wave["state"], "grey-7")
                    with ui.element("div").classes("w-20"):
                        tag(ui.badge(wave["state"], color=colour), f"wave-state-{wave['wave']}")
                    for column in WAVE_COLUMNS:
                        tag(ui.label(str(wave[column])), f"wave-{column}-{wave['wave']}").classes(
                            "w-20"
                        )
                    ui.label(fmt_fleet.when(wave["started_at"])).classes("w-48 text-sm")
                    ui.label(fmt_fleet.when(wave["finished_at"])).classes("w-48 text-sm")
        self.sites.clear()
        with self.sites:
            if not sites:
                ui.label("None.").classes("text-grey-7")
            for site in sites:
                with tag(ui.row().classes("w-full gap-3"), f"rollout-site-{site['site']}"):
                    ui.link(site["site"], f"/sites/{site['site']}").classes("w-40")
                    ui.badge(
                        site["status"],
                        color="negative" if site["status"] == "failed" else "warning",
                    )
                    ui.label(f"wave {site['wave']}").classes("w-16")
                    ui.label(site["reason"] or "").classes("grow")

    def _draw_actions(self, state: str) -> None:
        self.actions.clear()
        if not self.user.operator.admin:
            return
        with self.actions:
            for action in rollout_view.ACTIONS.get(state, ()):
                label = "Roll back" if action == "rollback" else action.capitalize()
                tag(
                    ui.button(label, on_click=lambda a=action: self.act(a)),
                    f"rollout-{action}",
                ).props("outline" if action in rollout_view.CONFIRM else "")

    async def act(self, action: str) -> None:
        self.notice.text = ""
        warning = rollout_view.CONFIRM.get(action)
        if warning is not None and not await confirm(warning, f"Yes, {action}"):
            return
        try:
            await self.user.call("POST", f"/api/v1/rollouts/{self.id}/{action}")
        except ApiError as err:
            if not self.frame.report(err):
                # e.g. 409 no_previous_version: a sentence with its code, nothing changed.
                self.notice.text = f"The registry refused to {action}: {err.text}"
            return
        ui.notify(f"Rollout #{self.id}: {action} done", type="positive")
        await self.refresh()


def register(deps: Deps) -> None:
    @ui.page("/rollouts/{rollout_id}", title="Towerbox fleet · rollout")
    async def rollout_page(rollout_id: int) -> RedirectResponse | None:
        opened = await open_page(deps, f"/rollouts/{rollout_id}", "rollouts")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            page = RolloutDetail(user, frame, rollout_id)
        await page.refresh()
        frame.start()
        # Waves move on their own (the registry steps them): the page follows.
        ui.timer(deps.settings.poll_s, page.refresh)
        return None
