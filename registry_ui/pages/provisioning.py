"""Zero-touch enrollment and node replacement on the enrollment page: provisioning
credentials (listed without secrets, created with the token shown once, revoked), a
site's hardware identity, and re-binding a site to a new node."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from nicegui import ui

from registry_ui import fmt_fleet
from registry_ui.api import ApiError, site_path
from registry_ui.forms import allow_from, expiry_from, labels_from
from registry_ui.handles import tag
from registry_ui.pages.common import confirm, problem_label, show_once
from registry_ui.session import OperatorApi
from towerbox_core.errors import InvalidInput

CREDENTIALS = "/api/v1/provisioning-credentials"
REBIND_WARNING = (
    "Rebind {site} to a new node? The old node's site secret stops working at once; its "
    "journal is kept as an ended epoch, and the new node starts a new one."
)


class Credentials:
    def __init__(self, user: OperatorApi) -> None:
        self.user = user
        self.admin = user.operator.admin
        with ui.card().classes("w-full gap-2"):
            ui.label("Provisioning credentials").classes("text-h6")
            ui.label(
                "A node that holds one enrolls itself: its hardware identity must be listed "
                "for a site or be on the credential's allow-list."
            ).classes("text-grey-7")
            if self.admin:
                with ui.row().classes("w-full gap-2 items-end"):
                    self.name = tag(ui.input("Name"), "prov-name")
                    self.labels = tag(ui.input("Labels (key=value, ...)"), "prov-labels")
                    self.region = tag(ui.input("Region"), "prov-region")
                    self.allow = tag(ui.input("Allow-list (id or id=site, ...)"), "prov-allow")
                    self.allow.classes("w-72")
                    self.expires = tag(ui.input("Expires in (days)"), "prov-expires")
                    tag(ui.button("Create credential", on_click=self.create), "prov-create")
                self.error = tag(ui.label("").classes("text-negative"), "prov-error")
                self.error.props('role="alert"')
            self.token_box = tag(ui.column().classes("w-full"), "prov-token-box")
            self.rows = tag(ui.column().classes("w-full gap-1"), "prov-rows")

    async def create(self) -> None:
        self.error.text = ""
        try:
            body = {
                "name": (self.name.value or "").strip(),
                "labels": labels_from(self.labels.value or ""),
                "region": (self.region.value or "").strip(),
                "allow": allow_from(self.allow.value or ""),
                "expires_in_s": expiry_from(self.expires.value or ""),
            }
        except InvalidInput as err:
            self.error.text = f"{err.message} [{err.code}]"
            return
        try:
            made = await self.user.call("POST", CREDENTIALS, json=body)
        except ApiError as err:
            self.error.text = f"The registry refused it: {err.text}"
            return
        until = made["expires_at"] or "revoked"
        show_once(
            self.token_box,
            f"Provisioning credential {made['name']}",
            made["token"],
            "prov",
            f"Valid until {until}, for every node of this installation: put it in "
            "provisioning_token_file of the agent's config (docs/enrollment.md).",
        )
        await self.load()

    async def revoke(self, credential: dict[str, Any]) -> None:
        if not await confirm(
            f"Revoke {credential['name']}? Nodes can no longer enroll with it; nodes it "
            "enrolled keep their site secrets.",
            "Revoke",
        ):
            return
        try:
            await self.user.call("DELETE", f"{CREDENTIALS}/{credential['id']}")
        except ApiError as err:
            self.error.text = f"Revoking failed: {err.text}"
            return
        await self.load()

    async def load(self) -> None:
        self.rows.clear()
        try:
            answer = await self.user.get(CREDENTIALS)
        except ApiError as err:
            with self.rows:
                problem_label(err, "Listing provisioning credentials")
            return
        with self.rows:
            if not answer["credentials"]:
                ui.label("No credential yet.").classes("text-grey-7")
            for c in answer["credentials"]:
                self.draw(c)

    def draw(self, c: dict[str, Any]) -> None:
        with tag(ui.row().classes("w-full items-center gap-3"), f"prov-row-{c['name']}"):
            ui.label(c["name"]).classes("w-40 font-medium")
            labels = ", ".join(f"{k}={v}" for k, v in sorted(c["labels"].items()))
            ui.label(labels or "-").classes("w-32")
            ui.label(c["region"] or "-").classes("w-20")
            ui.label(f"{len(c['allow'])} allowed · {c['uses']} uses").classes("w-36")
            if c["revoked_at"]:
                tag(ui.badge("revoked", color="grey-7"), f"prov-state-{c['name']}")
            else:
                until = fmt_fleet.when(c["expires_at"]) if c["expires_at"] else "no expiry"
                tag(ui.badge(f"active · {until}", color="positive"), f"prov-state-{c['name']}")
                if self.admin:
                    tag(
                        ui.button("Revoke", on_click=lambda c=c: self.revoke(c)),
                        f"prov-revoke-{c['name']}",
                    ).props("flat dense color=negative")


class NodeOfSite:
    """A site's hardware identity, and moving the site to a new node."""

    def __init__(self, user: OperatorApi) -> None:
        self.user = user
        with ui.card().classes("w-full gap-2"):
            ui.label("A site's node").classes("text-h6")
            with ui.row().classes("w-full gap-2 items-end"):
                self.site = tag(ui.input("Site name"), "node-site")
                tag(ui.button("Show identity", on_click=self.load), "node-show").props("flat")
                if user.operator.admin:
                    self.hardware = tag(ui.input("Hardware identity"), "node-hardware")
                    self.replacement = tag(
                        ui.checkbox("replaces the site's node"), "node-replacement"
                    )
                    tag(ui.button("List identity", on_click=self.list_identity), "node-list")
                    tag(
                        ui.button("Rebind site to a new node", on_click=self.rebind),
                        "node-rebind",
                    ).props("outline color=negative")
            self.error = tag(ui.label("").classes("text-negative"), "node-error")
            self.error.props('role="alert"')
            self.identities = tag(ui.column().classes("w-full gap-0"), "node-identities")
            self.token_box = tag(ui.column().classes("w-full"), "node-token-box")

    def _name(self) -> str:
        return (self.site.value or "").strip()

    async def load(self) -> None:
        self.error.text = ""
        self.identities.clear()
        try:
            listed = await self.user.get(site_path(self._name(), "identity"))
        except ApiError as err:
            self.error.text = f"Reading the identity: {err.text}"
            return
        with self.identities:
            if not listed:
                ui.label("No identity listed.").classes("text-grey-7")
            for i in listed:
                mark = " · replacement" if i["replacement"] else ""
                tag(ui.label(f"{i['hardware_id']}: {i['state']}{mark}"), f"node-id-{i['state']}")

    async def list_identity(self) -> None:
        self.error.text = ""
        body = {
            "hardware_id": (self.hardware.value or "").strip(),
            "replacement": bool(self.replacement.value),
        }
        try:
            await self.user.call("PUT", site_path(self._name(), "identity"), json=body)
        except ApiError as err:
            self.error.text = f"The registry refused it: {err.text}"
            return
        await self.load()

    async def rebind(self) -> None:
        self.error.text = ""
        name = self._name()
        if not await confirm(REBIND_WARNING.format(site=name), "Rebind"):
            return
        hardware = (self.hardware.value or "").strip() or None
        try:
            made = await self.user.call(
                "POST", site_path(name, "rebind"), json={"hardware_id": hardware}
            )
        except ApiError as err:
            self.error.text = f"The registry refused it: {err.text}"
            return
        show_once(
            self.token_box,
            f"{name}: epoch {made['epoch']} for the new node",
            made["enrollment_token"],
            "node",
            f"Valid until {made['enrollment_expires_at']}, for one enrollment: towerbox "
            f"agent enroll <registry-url> <token> on the new node. Journal epoch "
            f"{made['previous_epoch']} ({made['archived_entries']} entries) is kept: "
            f"/sites/{quote(name, safe='')}.",
        )
        await self.load()
