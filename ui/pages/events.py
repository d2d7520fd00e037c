"""Events: the node's journal as an audit log, newest first, filterable, live.

Each line says when, who, which object (by name, deletions too) and what changed in
a short summary; a click on a line shows the entry's whole state."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from ui import fmt
from ui.api import ApiError
from ui.deps import Deps
from ui.live import journalled
from ui.pages.common import error_label, open_page, tag
from ui.session import UserApi

WINDOW = 200
COLUMNS: list[dict[str, Any]] = [
    {"name": "seq", "label": "#", "field": "seq", "sortable": True, "align": "left"},
    {"name": "at", "label": "Time", "field": "at", "align": "left"},
    {"name": "actor", "label": "Actor", "field": "actor", "sortable": True, "align": "left"},
    {"name": "object", "label": "Object", "field": "object", "align": "left"},
    {"name": "kind", "label": "Event", "field": "kind", "sortable": True, "align": "left"},
    {"name": "summary", "label": "Change", "field": "summary", "align": "left"},
]


def event_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History lines (GET /api/v1/journal/history) as table rows, newest first."""
    rows = [
        {
            "seq": e["seq"],
            "at": fmt.when(e.get("at")),
            "actor": e["actor"],
            "object": f"{e['object_type']} {e.get('object_name') or e['object_id']}",
            "object_id": e["object_id"],
            "kind": e["kind"],
            "summary": e["summary"],
            "state": json.dumps(e.get("state"), indent=2, ensure_ascii=False),
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
                ui.input("Filter events", placeholder="actor, object, event or change").props(
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
        self.table.on("rowClick", self._show_state)
        self.filter.bind_value_to(self.table, "filter")

    def _show_state(self, event: Any) -> None:
        """The whole entry, on demand: the table shows only a line of it."""
        row = event.args[1] if isinstance(event.args, list) and len(event.args) > 1 else None
        if not isinstance(row, dict):
            return
        with ui.dialog() as dialog, ui.card().classes("min-w-[32rem]"):
            ui.label(f"#{row['seq']} {row['kind']} · {row['object']}").classes("text-h6")
            ui.label(f"{row['at']} by {row['actor']} · id {row['object_id']}").classes(
                "text-grey-7 text-sm"
            )
            tag(ui.code(row["state"], language="json").classes("w-full"), "events-state")
            ui.button("Close", on_click=dialog.close)
        dialog.open()

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
            head = (await self.user.get("/api/v1/journal/history", limit=1))["head"]
            if head == self.head:
                return
            page = await self.user.get("/api/v1/journal/history", limit=WINDOW)
        except ApiError as err:
            self.note.text = f"Journal unavailable: {err.text}"
            return
        self.head = head
        self.rows = event_rows(page["entries"])
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
            frame.live.watch(log.refresh, 2.0, journalled)
            frame.start()
        return None
