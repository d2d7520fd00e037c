"""Events: the node's journal, newest first, filterable, live."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from ui import fmt
from ui.api import ApiError
from ui.deps import Deps
from ui.pages.common import error_label, open_page, tag
from ui.session import UserApi

WINDOW = 200
COLUMNS: list[dict[str, Any]] = [
    {"name": "seq", "label": "#", "field": "seq", "sortable": True, "align": "left"},
    {"name": "at", "label": "Time", "field": "at", "align": "left"},
    {"name": "kind", "label": "Kind", "field": "kind", "sortable": True, "align": "left"},
    {"name": "object", "label": "Object", "field": "object", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left"},
]


def event_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {
            "seq": e["seq"],
            "at": fmt.when(e.get("created_at")),
            "kind": e["kind"],
            "object": f"{e.get('object_type')}/{e.get('object_id')}",
            "state": json.dumps(e.get("state"), separators=(",", ":"))[:160],
        }
        for e in entries
    ]
    rows.sort(key=lambda r: r["seq"], reverse=True)
    return rows


class EventLog:
    def __init__(self, user: UserApi) -> None:
        self.user = user
        self.head = 0
        self.rows: list[dict[str, Any]] = []
        with ui.row().classes("w-full items-center gap-2"):
            self.filter = tag(
                ui.input("Filter events", placeholder="kind, object, state text").props(
                    "clearable"
                ),
                "events-filter",
            ).classes("w-96")
            self.kinds = tag(
                ui.select(
                    {
                        "": "all kinds",
                        "vm.": "VMs",
                        "gpu.": "GPUs",
                        "n6.": "N6",
                        "artifact.": "artifacts",
                        "drift.": "drift",
                        "desired.": "desired state",
                        "token.": "tokens",
                        "user.": "users",
                        "tenant.": "tenants",
                    },
                    label="Kind",
                    value="",
                    on_change=self._apply_filter,
                ),
                "events-kind",
            ).classes("w-48")
            self.note = tag(ui.label("").classes("text-grey-7 text-sm"), "events-note")
        self.table = tag(
            ui.table(columns=COLUMNS, rows=[], row_key="seq", pagination=50).classes("w-full"),
            "events-table",
        )
        self.table.props('aria-label="Journal events, newest first"')
        self.filter.bind_value_to(self.table, "filter")

    def _apply_filter(self) -> None:
        prefix = self.kinds.value or ""
        self.table.rows = [r for r in self.rows if r["kind"].startswith(prefix)]
        self.table.update()
        self.note.text = (
            f"{len(self.table.rows)} of the newest {len(self.rows)} entries "
            f"(journal head #{self.head})"
        )

    async def refresh(self) -> None:
        try:
            head = (await self.user.get("/api/v1/journal", limit=1))["head"]
            if head == self.head:
                return
            after = max(self.head, head - WINDOW)
            page = await self.user.get("/api/v1/journal", after=after, limit=WINDOW)
        except ApiError as err:
            self.note.text = f"Journal unavailable: {err.text}"
            return
        self.head = head
        self.rows = (event_rows(page["entries"]) + self.rows)[:WINDOW]
        self._apply_filter()


def register(deps: Deps) -> None:
    @ui.page("/events", title="Towerbox · events")
    async def events_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/events", "events")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            ui.label("Events").classes("text-h5")
            log = EventLog(user)
            await log.refresh()
            if not log.rows and log.note.text.startswith("Journal unavailable"):
                error_label(ApiError(0, "journal", log.note.text), "Events")
            ui.timer(2.0, log.refresh)
            frame.start()
        return None
