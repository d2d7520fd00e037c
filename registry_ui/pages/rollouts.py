"""Rollouts: the list, newest first, filtered by state; each row leads to its page."""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from registry_ui import fmt_fleet, rollout_view
from registry_ui.api import ApiError
from registry_ui.deps import Deps
from registry_ui.frame import Frame
from registry_ui.handles import tag
from registry_ui.pages.common import open_page, problem_label
from registry_ui.session import OperatorApi

LIMIT = 100


class RolloutList:
    def __init__(self, user: OperatorApi, frame: Frame, state: str) -> None:
        self.user = user
        self.frame = frame
        self.state = state
        self._shown: Any = None
        ui.label("Rollouts").classes("text-h5")
        choices = {"": "any state", **{s: s for s in rollout_view.ROLLOUT_STATES}}
        self.filter = tag(
            ui.select(choices, value=state, label="State", on_change=self.pick), "rollout-filter"
        ).classes("w-48")
        self.error = ui.column()
        self.count = tag(ui.label(""), "rollout-count").classes("text-grey-7")
        self.rows = tag(ui.column().classes("w-full gap-1"), "rollout-rows")

    async def pick(self) -> None:
        self.state = self.filter.value or ""
        ui.navigate.history.replace(f"/rollouts?state={self.state}" if self.state else "/rollouts")
        await self.refresh()

    async def refresh(self) -> None:
        params = {"limit": LIMIT, **({"state": self.state} if self.state else {})}
        try:
            answer = await self.user.get("/api/v1/rollouts", params=params)
        except ApiError as err:
            if not self.frame.report(err):
                self.error.clear()
                with self.error:
                    problem_label(err, "Listing rollouts")
            return
        self.frame.show_up()
        self.error.clear()
        if answer == self._shown:
            return
        self._shown = answer
        self.count.text = f"{answer['total']} rollouts"
        self.rows.clear()
        with self.rows:
            for rollout in answer["rollouts"]:
                self.draw(rollout)

    def draw(self, rollout: dict[str, Any]) -> None:
        with tag(ui.row().classes("w-full items-center gap-3"), f"rollout-row-{rollout['id']}"):
            ui.link(f"#{rollout['id']}", f"/rollouts/{rollout['id']}").classes("w-12")
            state = rollout["state"]
            ui.badge(state, color=rollout_view.STATE_COLOURS.get(state, "grey-7")).classes("w-24")
            ui.label(rollout["group"]).classes("w-40")
            ui.label(f"{rollout['kind']} v{rollout['version']}").classes("w-28")
            ui.label(rollout_view.progress(rollout)).classes("grow")
            ui.label(
                f"by {rollout['created_by'] or '?'}, {fmt_fleet.when(rollout['created_at'])}"
            ).classes("text-grey-7 text-sm")


def register(deps: Deps) -> None:
    @ui.page("/rollouts", title="Towerbox fleet · rollouts")
    async def rollouts_page(state: str = "") -> RedirectResponse | None:
        state = state if state in rollout_view.ROLLOUT_STATES else ""
        opened = await open_page(deps, f"/rollouts?state={state}", "rollouts")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            page = RolloutList(user, frame, state)
        await page.refresh()
        frame.start()
        ui.timer(deps.settings.poll_s, page.refresh)
        return None
