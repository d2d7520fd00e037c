"""One VM: spec and allocation, actions, history charts, the serial console log."""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse
from nicegui import ui

from ui import attention, fmt, vm_actions
from ui.api import ApiError, vm_path
from ui.deps import Deps
from ui.pages.common import error_label, open_page, tag
from ui.session import UserApi
from ui.theme import STATE_COLOURS
from ui.vm_charts import VmCharts

CONSOLE_LINES = 200


def spec_rows(vm: dict[str, Any]) -> list[tuple[str, str]]:
    spec = vm.get("spec") or {}
    alloc = vm.get("allocation") or {}
    cpu = spec.get("cpu") or {}
    gpu = vm.get("gpu") or spec.get("gpu")
    cpus = alloc.get("cpus") or []
    return [
        ("Appliance", str(vm.get("appliance") or "-")),
        ("Role", str(vm.get("role") or "-")),
        ("Tenant", str(vm.get("tenant") or "-")),
        ("Service", _service_text(vm)),
        ("vCPUs", f"{vm.get('vcpus')} ({cpu.get('policy', '?')})"),
        ("Memory", fmt.mib(vm.get("memory_mib"))),
        ("Hugepages", str(spec.get("hugepages", "none"))),
        ("NUMA node", str(alloc.get("numa_node") if alloc.get("numa_node") is not None else "any")),
        ("Pinned CPUs", ", ".join(map(str, cpus)) if cpus else "none (shared)"),
        ("Disks", str(len(spec.get("disks") or []))),
        (
            "NICs",
            ", ".join(
                str(n.get("vnet") or n.get("bridge") or n.get("kind"))
                for n in spec.get("nics") or []
            )
            or "none",
        ),
        ("GPU", _gpu_text(gpu)),
        ("Restart policy", str(spec.get("restart", "-"))),
        ("Desired state", str(vm.get("desired_state", "-"))),
    ]


def _service_text(vm: dict[str, Any]) -> str:
    if not vm.get("service"):
        return "-"
    return f"{vm['service']}, role {vm.get('service_role')} (a replica: the service deletes it)"


def _gpu_text(gpu: Any) -> str:
    if not gpu:
        return "none"
    if isinstance(gpu, dict):
        return ", ".join(
            f"{k}={v}" for k, v in gpu.items() if v is not None and not isinstance(v, dict)
        )
    return str(gpu)


class VmDetail:
    def __init__(self, user: UserApi, vm: dict[str, Any]) -> None:
        self.user = user
        self.name = str(vm["name"])
        self._vm = vm
        self._console = ""
        with ui.row().classes("w-full items-center gap-3"):
            ui.label(self.name).classes("text-h5")
            self.state = tag(ui.badge("", color="grey"), "vm-state")
            ui.space()
            self.buttons: dict[str, ui.button] = {}
            for action in vm_actions.ACTIONS:
                self.buttons[action.key] = tag(
                    ui.button(
                        action.label,
                        color="negative" if action.destroys else "primary",
                        on_click=lambda _, key=action.key: self.act(key),
                    ).props("outline"),
                    f"vm-action-{action.key}",
                )
        self.attention = tag(
            ui.label("").classes("text-orange-10 bg-orange-1 p-2 rounded w-full"), "vm-attention"
        )
        self.attention.props('role="status"')
        with ui.row().classes("w-full gap-4 items-start no-wrap"):
            with ui.card().classes("min-w-[20rem]"):
                ui.label("Spec and allocation").classes("text-h6")
                self.spec_box = tag(ui.column().classes("gap-0"), "vm-spec")
            self.charts = VmCharts()
        with ui.card().classes("w-full"):
            ui.label("Serial console").classes("text-h6")
            self.console = tag(
                ui.log(max_lines=CONSOLE_LINES).classes("w-full h-64 font-mono text-xs"),
                "vm-console",
            )
            self.console.props('aria-label="Serial console log"')
            self.console_note = tag(ui.label("").classes("text-grey-7 text-xs"), "vm-console-note")
        self._show_vm(vm)

    def _show_vm(self, vm: dict[str, Any]) -> None:
        state = str(vm.get("state") or "unknown")
        self.state.text = state
        self.state.props(f"color={STATE_COLOURS.get(state, 'grey')}")
        for key, button in self.buttons.items():
            allowed = vm_actions.BY_KEY[key].applies_to(state)
            # A service's replica is deleted by its service (scale or remove), not here.
            button.set_enabled(allowed and not (key == "delete" and vm.get("service")))
        self.attention.text = attention.vm_line(vm) if vm.get("attention") else ""
        self.attention.set_visibility(bool(vm.get("attention")))
        self.spec_box.clear()
        with self.spec_box, ui.element("dl").classes("grid grid-cols-2 gap-x-4 text-sm"):
            for key, value in spec_rows(vm):
                with ui.element("dt").classes("font-bold"):
                    ui.label(key)
                with ui.element("dd"):
                    ui.label(value)

    async def refresh(self) -> None:
        try:
            vm = await self.user.get(vm_path(self.name))
        except ApiError as err:
            if err.status == 404:
                self.state.text = "deleted"
                self.state.props("color=grey")
            return
        if vm != self._vm:
            self._vm = vm
            self._show_vm(vm)

    async def refresh_history(self) -> None:
        try:
            stats = await self.user.get(vm_path(self.name, "stats"))
            console = await self.user.get(vm_path(self.name, "console"), lines=CONSOLE_LINES)
        except ApiError as err:
            self.charts.note.text = f"History unavailable: {err.text}"
            return
        self.charts.show(stats)
        text = console if isinstance(console, str) else ""
        self.console_note.text = "" if text else "Nothing on the serial console yet."
        if text != self._console:
            self._append_console(text)

    def _append_console(self, text: str) -> None:
        if self._console and text.startswith(self._console):
            new = text[len(self._console) :]
        else:
            self.console.clear()
            new = text
        self._console = text
        for line in new.splitlines():
            self.console.push(line)

    async def act(self, key: str) -> None:
        role = str(self._vm.get("role") or "")
        done = await vm_actions.run(self.user, key, [self.name], {self.name: role})
        if done and key == "delete":
            ui.navigate.to("/vms")
            return
        await self.refresh()


def register(deps: Deps) -> None:
    @ui.page("/vms/{name}", title="Towerbox · VM")
    async def vm_page(name: str) -> RedirectResponse | None:
        opened = await open_page(deps, f"/vms/{name}", "vms")
        if isinstance(opened, RedirectResponse):
            return opened
        user, frame = opened
        with frame.content:
            ui.link("← all VMs", "/vms")
            try:
                vm = await user.get(vm_path(name))
            except ApiError as err:
                error_label(err, f"VM {name}")
                return None
            detail = VmDetail(user, vm)
            await detail.refresh_history()
            frame.live.watch(
                detail.refresh,
                deps.settings.live_poll_s,
                lambda change: change.object_type == "vm" and change.name == name,
            )
            # The history grows once per monitor sweep: refetched when the stream says so.
            frame.live.watch(
                detail.refresh_history,
                max(2.0, deps.settings.live_poll_s * 2),
                lambda _change: False,
                sweeps=True,
            )
            frame.start()
        return None
