"""The VMs page: a live table, actions on the selected VMs, the create wizard."""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from ui import attention, fmt, vm_actions
from ui.api import ApiError, vm_path
from ui.deps import Deps
from ui.live import Change
from ui.pages.common import error_label, open_page, tag
from ui.pages.vm_create import CreateWizard
from ui.session import UserApi, notify_error
from ui.theme import STATE_COLOURS
from ui.vm_offer import load_offer

COLUMNS = [
    {"name": "name", "label": "Name", "field": "name", "sortable": True, "align": "left"},
    {"name": "state", "label": "State", "field": "state", "sortable": True, "align": "left"},
    {"name": "role", "label": "Role", "field": "role", "sortable": True, "align": "left"},
    {"name": "tenant", "label": "Tenant", "field": "tenant", "sortable": True, "align": "left"},
    {"name": "vcpus", "label": "vCPUs", "field": "vcpus", "sortable": True},
    {"name": "memory", "label": "Memory", "field": "memory", "sortable": True},
    {"name": "cpu", "label": "CPU", "field": "cpu", "sortable": True},
]

NAME_SLOT = r"""
<q-td :props="props"><a :href="'/vms/' + encodeURIComponent(props.value)"
   class="text-primary" :data-testid="'vm-link-' + props.value">{{ props.value }}</a></q-td>
"""
STATE_SLOT = r"""
<q-td :props="props"><q-badge :color="({COLOURS})[props.value] || 'grey'"
   :data-testid="'vm-state-' + props.row.name">{{ props.value }}</q-badge>
  <q-badge v-if="props.row.attention" color="orange-9" class="q-ml-xs"
   :title="props.row.reason" :data-testid="'vm-attention-' + props.row.name"
   >{{ props.row.attention }}</q-badge></q-td>
""".replace("{COLOURS}", str(STATE_COLOURS))  # single-quoted JS inside a double-quoted attribute


def rows_from(vms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": vm["name"],
            "state": vm.get("state") or "unknown",
            "role": vm.get("role") or "-",
            "tenant": vm.get("tenant") or "-",
            "vcpus": vm.get("vcpus"),
            "memory": fmt.mib(vm.get("memory_mib")),
            # A guest that is not running uses no CPU, whatever its last sample said.
            "cpu": fmt.pct(vm.get("cpu_pct")) if vm.get("state") == "running" else "-",
            "attention": attention.badge(vm),
            "reason": attention.vm_line(vm) if vm.get("attention") else "",
        }
        for vm in vms
    ]


class VmTable:
    def __init__(self, user: UserApi, vms: list[dict[str, Any]]) -> None:
        self.user = user
        self.vms = vms
        self.rows = rows_from(vms)
        # Per VM: changes heard, and the fetches under way (one at a time, see changed).
        self._seen: dict[str, int] = {}
        self._fetching: set[str] = set()
        self._again: set[str] = set()
        with ui.row().classes("w-full items-center gap-2"):
            self.filter = tag(
                ui.input("Filter VMs", placeholder="name, role, tenant, state").props("clearable"),
                "vm-filter",
            )
            ui.space()
            self.buttons: dict[str, ui.button] = {}
            for action in vm_actions.ACTIONS:
                colour = "negative" if action.destroys else "primary"
                self.buttons[action.key] = tag(
                    ui.button(
                        action.label,
                        on_click=lambda _, key=action.key: self.act(key),
                        color=colour,
                    ).props("outline"),
                    f"vm-action-{action.key}",
                )
        self.table = tag(
            ui.table(
                columns=COLUMNS,
                rows=self.rows,
                row_key="name",
                selection="multiple",
                pagination=0,
            ).classes("w-full"),
            "vm-table",
        )
        self.table.add_slot("body-cell-name", NAME_SLOT)
        self.table.add_slot("body-cell-state", STATE_SLOT)
        self.table.props('aria-label="Virtual machines"')
        # Only the rows in view are in the page (the table scrolls within its own
        # height): a change renders and lays out a screenful, not every VM's row.
        self.table.props("virtual-scroll").style("max-height: 75vh")
        self.table.on_select(lambda _: self._enable_actions())
        self.filter.bind_value_to(self.table, "filter")
        self.count = tag(ui.label(self._count_text()).classes("text-grey-8 text-sm"), "vm-count")
        self._enable_actions()

    def _enable_actions(self) -> None:
        """An action is offered when it applies to at least one selected VM."""
        states = {r["name"]: r["state"] for r in self.rows}
        selected = [states.get(r["name"], "unknown") for r in self.table.selected]
        for key, button in self.buttons.items():
            action = vm_actions.BY_KEY[key]
            button.set_enabled(any(action.applies_to(state) for state in selected))

    def _count_text(self) -> str:
        running = sum(r["state"] == "running" for r in self.rows)
        return f"{len(self.rows)} VMs, {running} running"

    def show(self, vms: list[dict[str, Any]]) -> None:
        self.vms = vms
        rows = rows_from(vms)
        if rows == self.rows:
            return  # nothing changed: send nothing to the browser
        self.rows = rows
        # The rows, the count and the buttons go out in one update, which the browser
        # renders once. NiceGUI renders a page from its root on any update, and the
        # table with it: rows patched apart from the count would cost two renders of
        # every row, the longest part of showing a change.
        self.table.rows = rows
        names = {r["name"] for r in rows}
        self.table.selected = [r for r in self.table.selected if r["name"] in names]
        self.table.update()
        self.count.text = self._count_text()
        self._enable_actions()

    async def refresh(self) -> None:
        try:
            self.show(await self.user.get("/api/v1/vms"))
        except ApiError:
            return  # the frame's banner says when the appliance is gone

    async def changed(self, change: Change) -> None:
        """One VM changed: show a state the event carries at once, then fetch just
        that VM (a new or deleted VM: the list)."""
        name = change.name
        if not name or change.kind in ("vm.created", "vm.deleted"):
            await self.refresh()
            return
        if not any(v["name"] == name for v in self.vms):
            await self.refresh()
            return
        self._seen[name] = self._seen.get(name, 0) + 1
        state = change.state.get("state") if isinstance(change.state, dict) else None
        if isinstance(state, str):
            self._replace(name, {**self._vm(name), "state": state})
        if name in self._fetching:
            self._again.add(name)  # the fetch under way may predate this change
            return
        self._fetching.add(name)
        try:
            while True:
                self._again.discard(name)
                seen = self._seen[name]
                try:
                    vm = await self.user.get(vm_path(name))
                except ApiError:
                    await self.refresh()  # gone meanwhile: the list says
                    return
                if self._seen[name] == seen:  # no newer change came in meanwhile
                    self._replace(name, vm)
                if name not in self._again:
                    return
        finally:
            self._fetching.discard(name)

    def _vm(self, name: str) -> dict[str, Any]:
        return next(v for v in self.vms if v["name"] == name)

    def _replace(self, name: str, vm: dict[str, Any]) -> None:
        self.show([vm if v["name"] == name else v for v in self.vms])

    async def act(self, key: str) -> None:
        action = vm_actions.BY_KEY[key]
        states = {r["name"]: r["state"] for r in self.rows}
        names = [
            r["name"]
            for r in self.table.selected
            if action.applies_to(states.get(r["name"], "unknown"))
        ]
        roles = {r["name"]: r["role"] for r in self.rows}
        if await vm_actions.run(self.user, key, names, roles):
            await self.refresh()


def register(deps: Deps) -> None:
    @ui.page("/vms", title="Towerbox · VMs")
    async def vms_page() -> RedirectResponse | None:
        opened = await open_page(deps, "/vms", "vms")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            try:
                vms = await user.get("/api/v1/vms")
            except ApiError as err:
                ui.label("Virtual machines").classes("text-h5")
                error_label(err, "Loading the VMs failed")
                return None
            wizard_box = ui.element("div")
            tables: list[VmTable] = []

            async def open_wizard() -> None:
                try:
                    catalog = await user.get("/api/v1/catalog")
                    offer = await load_offer(user)
                except ApiError as err:
                    notify_error(err, "Loading what a VM may use")
                    return
                wizard_box.clear()
                with wizard_box:
                    CreateWizard(user, catalog, offer, lambda _name: tables[0].refresh()).open()

            with ui.row().classes("w-full items-center"):
                ui.label("Virtual machines").classes("text-h5")
                tag(ui.button("Create VM", icon="add", on_click=open_wizard), "vm-create")
            table = VmTable(user, vms)
            tables.append(table)
            frame.live.watch(
                table.refresh,
                deps.settings.live_poll_s,
                matches=lambda change: change.object_type == "vm",
                on_change=table.changed,
            )
            frame.start()
        return None
