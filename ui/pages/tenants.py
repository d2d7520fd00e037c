"""The Tenants page (infra-admin): every tenant's usage against its quotas, the editor
of its quotas and grants, and tenant creation. Others get a plain refusal."""

from __future__ import annotations

from fastapi.responses import RedirectResponse
from nicegui import ui

from towerbox_core.api.tenants import TenantDetail
from ui.api import ApiError, tenant_path
from ui.deps import Deps
from ui.pages.common import error_label, open_page, tag
from ui.pages.tenant_edit import TenantEditor
from ui.session import UserApi
from ui.usage import detail_of, draw_usage

INFRA_ONLY = "The Tenants page needs the infra-admin role."


class TenantList:
    def __init__(self, user: UserApi) -> None:
        self.user = user
        self._shown: list[TenantDetail] | None = None
        with ui.card().classes("w-full"):
            ui.label("New tenant").classes("text-h6")
            with ui.row().classes("items-start gap-2"):
                self.new_name = tag(ui.input("Tenant name"), "tenant-new-name")
                self.new_description = tag(ui.input("Description"), "tenant-new-description")
                tag(ui.button("Create tenant", on_click=self.create), "tenant-create")
            self.create_error = tag(ui.label("").classes("text-negative"), "tenant-create-error")
            self.create_error.props('role="alert"')
        self.box = tag(ui.column().classes("w-full gap-4"), "tenant-list")
        self.editor_box = ui.element("div")

    async def refresh(self) -> None:
        try:
            names = [t["name"] for t in await self.user.get("/api/v1/tenants")]
            details = [detail_of(await self.user.get(tenant_path(n))) for n in names]
        except ApiError as err:
            self._shown = None
            self.box.clear()
            with self.box:
                error_label(err, "Loading the tenants failed")
            return
        if details == self._shown:
            return
        self._shown = details
        self.box.clear()
        with self.box:
            if not details:
                ui.label("No tenants yet.")
            for detail in details:
                self._draw(detail)

    def _draw(self, detail: TenantDetail) -> None:
        with tag(ui.card().classes("w-full"), f"tenant-{detail.name}"):
            with ui.row().classes("w-full items-center"):
                ui.label(detail.name).classes("text-h6")
                ui.label(detail.description).classes("text-grey-8")
                if detail.quotas_source == "defaults":
                    ui.badge("node default quotas", color="grey-6")
                ui.space()
                tag(
                    ui.button(
                        "Edit quotas and grants",
                        on_click=lambda _, d=detail: self.edit(d),
                    ).props("outline"),
                    f"tenant-edit-{detail.name}",
                )
            draw_usage(detail, f"tenant-{detail.name}")
            ui.label(grant_summary(detail)).classes("text-sm text-grey-8")

    def edit(self, detail: TenantDetail) -> None:
        self.editor_box.clear()
        with self.editor_box:
            TenantEditor(self.user, detail, self.refresh).open()

    async def create(self) -> None:
        name = (self.new_name.value or "").strip()
        body = {"name": name, "description": (self.new_description.value or "").strip()}
        self.create_error.text = ""
        try:
            await self.user.post("/api/v1/tenants", json=body)
        except ApiError as err:
            # What was typed stays, so it can be fixed.
            self.create_error.text = f"Creating the tenant failed: {err.text}"
            return
        ui.notify(f"Tenant {name} created", type="positive")
        self.new_name.value = ""
        self.new_description.value = ""
        await self.refresh()


def grant_summary(detail: TenantDetail) -> str:
    g = detail.grants
    parts = []
    if g.pinned_cores:
        parts.append(f"{g.pinned_cores} pinned cores ({detail.usage.pinned_cores} used)")
    if g.isolated_cores:
        parts.append("isolated cores")
    parts += [f"{size} hugepages: {mib} MiB" for size, mib in sorted(g.hugepages.items())]
    if g.numa_node_choice:
        parts.append("NUMA node choice")
    parts += [f"{pf}: {n} VFs" for pf, n in sorted(g.sriov_pfs.items())]
    parts += [f"PCI {address}" for address in g.pci_devices]
    return "Grants: " + (", ".join(parts) if parts else "none (plain shared VMs only)")


def register(deps: Deps) -> None:
    @ui.page("/tenants", title="Towerbox · tenants")
    async def tenants_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/tenants", "tenants")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            ui.label("Tenants").classes("text-h5")
            if not user.session.infra_admin:
                # The appliance refuses the writes anyway; the page says so up front.
                tag(ui.label(INFRA_ONLY).classes("text-negative"), "tenants-refused").props(
                    'role="alert"'
                )
                frame.start()
                return None
            tenants = TenantList(user)
            await tenants.refresh()
            ui.timer(10.0, tenants.refresh)
            frame.start()
        return None
