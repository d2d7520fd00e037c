"""Desired documents: view, edit with validation, diff against the published version,
publish with If-Match (or, for a group, as a rollout)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi.responses import RedirectResponse
from nicegui import ui

from registry_ui import doc_edit, rollout_view
from registry_ui.api import ApiError, desired_path
from registry_ui.deps import Deps
from registry_ui.handles import tag
from registry_ui.pages.common import open_page, problem_label
from registry_ui.session import OperatorApi
from towerbox_core.errors import InvalidInput
from towerbox_core.wire import DESIRED_KINDS


class DocumentEditor:
    def __init__(self, user: OperatorApi, scope: str, kind: str) -> None:
        self.user = user
        self.scope = scope
        self.kind = kind
        # What is published now: the base of the diff and of If-Match.
        self.current: dict[str, Any] | None = None
        self.etag: str | None = None
        self.version = 0
        self.admin = user.operator.admin
        ui.label(f"{kind} for {scope}").classes("text-h6")
        self.published = tag(ui.label(""), "doc-version")
        self.editor = tag(ui.textarea("Document (JSON)"), "doc-editor")
        self.editor.classes("w-full font-mono").props("outlined autogrow spellcheck=false")
        if not self.admin:
            self.editor.props("readonly")
        self.error = tag(ui.label("").classes("text-negative font-mono"), "doc-error")
        self.error.props('role="alert"')
        with ui.row().classes("gap-2"):
            tag(ui.button("Show diff", on_click=self.show_diff), "doc-diff-button").props("flat")
            if self.admin:
                tag(ui.button("Publish", on_click=self.ask_publish), "doc-publish")
                if scope.startswith("group:"):
                    tag(
                        ui.button("Publish as rollout", on_click=self.ask_rollout),
                        "doc-rollout",
                    ).props("outline")
                tag(ui.button("Reload published", on_click=self.reload_base), "doc-reload").props(
                    "flat"
                )
            else:
                ui.label("Viewers read documents; an admin publishes them.").classes("text-grey-7")
        self.diff = tag(ui.column().classes("w-full gap-0 font-mono text-sm"), "doc-diff")

    async def load(self) -> None:
        await self.reload_base()
        self.editor.value = doc_edit.pretty(self.current or {})

    async def reload_base(self) -> None:
        """The published version again; the editor's text stays, to diff against it."""
        try:
            record = await self.user.get(desired_path(self.scope, self.kind))
        except ApiError as err:
            if err.code != "desired_not_found":
                self.error.text = f"Reading the document: {err.text}"
                return
            self.current, self.etag, self.version = None, None, 0
            self.published.text = "Not published yet: publishing makes version 1."
            return
        self.current, self.etag = record["document"], record["etag"]
        self.version = int(record["version"])
        self.published.text = (
            f"Published: version {self.version} by {record['created_by'] or '?'}, "
            f"{record['created_at']}"
        )

    def edited(self) -> dict[str, Any] | None:
        self.error.text = ""
        try:
            return doc_edit.parse_document(self.editor.value or "")
        except InvalidInput as err:
            self.error.text = f"{err.message} [{err.code}]"
            return None

    def show_diff(self) -> list[str] | None:
        document = self.edited()
        if document is None:
            return None
        lines = doc_edit.diff_lines(self.current, document, f"{self.kind} v{self.version}")
        self.diff.clear()
        with self.diff:
            if not lines:
                ui.label("No change against the published version.").classes("text-grey-7")
            for line in lines:
                colour = {"+": "text-green-9", "-": "text-red-9"}.get(line[:1], "text-grey-8")
                ui.label(line).classes(f"{colour} whitespace-pre")
        return lines

    async def ask_publish(self) -> None:
        await self._confirm("Publish", self.publish)

    async def ask_rollout(self) -> None:
        """The diff, then the wave settings; an empty field takes the registry's default."""
        lines = self.show_diff()
        if lines is None:
            return
        with ui.dialog() as dialog, ui.card().classes("w-[32rem]"):
            ui.label("Publish as rollout (diff below the editor)").classes("text-h6")
            ui.label("Leave a field empty for the registry's default.").classes("text-grey-7")
            fields = {
                "waves": tag(
                    ui.input("Waves (cumulative %)", placeholder="5, 25, 100"), "rollout-set-waves"
                )
            }
            for key, label, _ in rollout_view.SETTINGS:
                fields[key] = tag(ui.input(label, placeholder="default"), f"rollout-set-{key}")
            with ui.row():
                tag(ui.button("Start rollout", on_click=lambda: dialog.submit(True)), "doc-confirm")
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
        if await dialog:
            await self.rollout({key: field.value or "" for key, field in fields.items()})

    async def _confirm(self, what: str, action: Any) -> None:
        lines = self.show_diff()
        if lines is None:
            return
        if not lines:
            ui.notify("Nothing to publish: the document is the published one.")
            return
        with ui.dialog() as dialog, ui.card():
            ui.label(f"{what} this change (diff below the editor)?")
            with ui.row():
                tag(ui.button(what, on_click=lambda: dialog.submit(True)), "doc-confirm")
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
        if await dialog:
            await action()

    async def publish(self) -> None:
        document = self.edited()
        if document is None:
            return
        # The version this edit started from: a change someone made meanwhile is refused
        # (412) rather than overwritten.
        headers = {"If-Match": f'"{self.etag}"'} if self.etag else None
        try:
            written = await self.user.call(
                "PUT", desired_path(self.scope, self.kind), json=document, headers=headers
            )
        except ApiError as err:
            self.refused(err)
            return
        ui.notify(f"Published {self.kind} version {written['version']}", type="positive")
        await self.reload_base()
        self.show_diff()

    async def rollout(self, settings: dict[str, str]) -> None:
        document = self.edited()
        if document is None:
            return
        try:
            options = rollout_view.rollout_options(settings)
        except InvalidInput as err:
            self.error.text = f"{err.message} [{err.code}]"
            return
        body: dict[str, Any] = {
            **options,
            "group": self.scope.removeprefix("group:"),
            "kind": self.kind,
            "document": document,
        }
        if self.etag:
            body["if_match"] = self.etag
        try:
            made = await self.user.call("POST", "/api/v1/rollouts", json=body)
        except ApiError as err:
            self.refused(err)
            return
        ui.notify(f"Rollout {made['id']} started", type="positive")
        ui.navigate.to(f"/rollouts/{made['id']}")

    def refused(self, err: ApiError) -> None:
        if err.status == 412:
            self.error.text = (
                "Someone published another version since you opened this one; your text "
                f"is still here. Reload published to see the diff against theirs. [{err.code}]"
            )
            return
        where = f" (at {err.field})" if err.field else ""
        self.error.text = f"The registry refused it{where}: {err.text}"


def register(deps: Deps) -> None:
    @ui.page("/documents", title="Towerbox fleet · documents")
    async def documents_page(scope: str = "", kind: str = "") -> RedirectResponse | None:
        here = "/documents?" + urlencode({"scope": scope, "kind": kind})
        opened = await open_page(deps, here, "documents")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            ui.label("Desired documents").classes("text-h5")
            with ui.row().classes("items-center gap-3"):
                where = tag(
                    ui.input("Scope: site:<name> or group:<key>=<value>", value=scope),
                    "doc-scope",
                ).classes("w-96")
                which = tag(
                    ui.select(list(DESIRED_KINDS), value=kind or DESIRED_KINDS[0], label="Kind"),
                    "doc-kind",
                )

                def open_document() -> None:
                    target = {"scope": (where.value or "").strip(), "kind": which.value}
                    ui.navigate.to("/documents?" + urlencode(target))

                tag(ui.button("Open", on_click=open_document), "doc-open")
            if scope.startswith(("site:", "group:")) and kind in DESIRED_KINDS:
                editor = DocumentEditor(user, scope, kind)
                await editor.load()
            elif scope or kind:
                problem_label(
                    ApiError(0, "invalid_scope", "pick site:<name> or group:<key>=<value>"),
                    "Opening a document",
                )
        frame.start()
        return None
