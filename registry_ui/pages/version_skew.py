"""Version skew on the fleet overview: per component, the versions the sites run and
how many run each, the most common marked; a version leads to its sites."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from nicegui import ui

from registry_ui.api import ApiError
from registry_ui.handles import tag
from registry_ui.pages.common import problem_label
from registry_ui.session import OperatorApi

# At most this many versions per component; the site list has them all.
SHOWN = 8


def version_link(component: str, version: str) -> str:
    return "/sites?" + urlencode({"component": component, "version": version})


class VersionSkew:
    def __init__(self, user: OperatorApi) -> None:
        self.user = user
        self._shown: Any = None
        with ui.card().classes("min-w-[24rem]"):
            ui.label("Versions").classes("text-h6")
            self.body = tag(ui.column().classes("w-full gap-1"), "version-skew")

    async def refresh(self) -> None:
        try:
            answer = await self.user.get("/api/v1/fleet/versions")
        except ApiError as err:
            # An unreachable registry is the frame's banner; other refusals show here.
            if err.status != 0:
                self.body.clear()
                with self.body:
                    problem_label(err, "Reading versions")
            return
        if answer == self._shown:
            return
        self._shown = answer
        self.body.clear()
        with self.body:
            for item in answer["components"]:
                self.draw(item)

    def draw(self, item: dict[str, Any]) -> None:
        component = item["component"]
        with tag(ui.row().classes("w-full gap-2 items-center"), f"versions-{component}"):
            ui.label(component).classes("w-28 font-medium")
            if not item["versions"]:
                ui.label("not reported").classes("text-grey-7")
            for v in item["versions"][:SHOWN]:
                common = v["version"] == item["most_common"]
                text = f"{v['version']}: {v['sites']}" + (" (most)" if common else "")
                link = ui.link(text, version_link(component, v["version"]))
                link.classes("font-bold" if common else "text-orange-9")
                tag(link, f"version-{component}-{v['version']}")
            if item["unreported"]:
                ui.label(f"{item['unreported']} unreported").classes("text-grey-7 text-sm")
