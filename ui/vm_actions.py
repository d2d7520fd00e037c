"""VM power actions: asked before anything disruptive, progress, and a closing notice.

Every action that interrupts a guest is confirmed; on a vRAN DU or a UPF an outage is
a cell or a data path down, so there the operator types the VM's name to go on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nicegui import ui

from ui.api import ApiError, vm_path
from ui.session import UserApi

# Roles whose interruption takes a cell or the user plane down.
CRITICAL_ROLES = frozenset({"vran", "upf"})


@dataclass(frozen=True)
class Action:
    key: str
    label: str
    doing: str
    disrupts: str | None  # what the guest loses, asked before acting; None: no question
    on_running: bool | None  # True: only a running guest; False: only one that is not
    destroys: bool = False  # coloured as dangerous

    def applies_to(self, state: str) -> bool:
        return self.on_running is None or (state in RUNNING) == self.on_running


# States with a live QEMU process behind them.
RUNNING = frozenset({"running", "paused", "unresponsive"})

ACTIONS = (
    Action("start", "Start", "Starting", None, on_running=False),
    Action(
        "shutdown",
        "Shut down",
        "Shutting down",
        "The guest is asked to shut down; what it serves stops until it is started again.",
        on_running=True,
    ),
    Action(
        "stop",
        "Force stop",
        "Forcing off",
        "The guest is cut off like a pulled plug; unsaved data is lost.",
        on_running=True,
        destroys=True,
    ),
    Action(
        "reboot",
        "Reboot",
        "Rebooting",
        "The guest restarts; what it serves is down until it is back.",
        on_running=True,
    ),
    Action(
        "delete",
        "Delete",
        "Deleting",
        "The VM and its disks are removed for good.",
        on_running=None,
        destroys=True,
    ),
)
BY_KEY = {a.key: a for a in ACTIONS}


async def confirm(title: str, body: str, yes: str, type_to_confirm: str | None = None) -> bool:
    """Ask before acting; with ``type_to_confirm`` the button waits for that text."""
    with ui.dialog() as dialog, ui.card().props('role="alertdialog"'):
        ui.label(title).classes("text-h6")
        ui.label(body)
        typed = None
        if type_to_confirm is not None:
            typed = (
                ui.input(f"Type {type_to_confirm} to confirm")
                .props('autofocus data-testid="confirm-typed"')
                .mark("confirm-typed")
            )
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat autofocus")
            yes_button = (
                ui.button(yes, color="negative", on_click=lambda: dialog.submit(True))
                .mark("confirm-yes")
                .props('data-testid="confirm-yes"')
            )
        if typed is not None:
            yes_button.bind_enabled_from(typed, "value", lambda v: v == type_to_confirm)
    answer = await dialog
    dialog.delete()
    return bool(answer)


async def run(
    user: UserApi, action_key: str, names: list[str], roles: Mapping[str, str] | None = None
) -> list[str]:
    """Run an action on VMs in turn; returns those it succeeded on.

    ``roles`` (name to role) makes the question stronger for vRAN and UPF VMs.
    """
    action = BY_KEY[action_key]
    if not names:
        ui.notify("Select one or more VMs first.", type="warning")
        return []
    listed = ", ".join(names)
    critical = [n for n in names if (roles or {}).get(n) in CRITICAL_ROLES]
    if action.disrupts:
        body = action.disrupts
        if critical:
            body += (
                f" {', '.join(critical)} {'is' if len(critical) == 1 else 'are'} vRAN or UPF: "
                "the cell or the user plane it carries goes down."
            )
        if not await confirm(
            f"{action.label} {listed}?",
            body,
            f"{action.label} {len(names)} VM(s)",
            type_to_confirm=", ".join(critical) if critical else None,
        ):
            return []
    done: list[str] = []
    progress = ui.notification(f"{action.doing} {listed}…", spinner=True, timeout=None)
    try:
        for name in names:
            progress.message = f"{action.doing} {name}…"
            try:
                if action.key == "delete":
                    await user.call("DELETE", vm_path(name))
                else:
                    await user.post(vm_path(name, action.key))
            except ApiError as err:
                ui.notify(
                    f"{action.label} {name} failed: {err.text}", type="negative", multi_line=True
                )
                continue
            done.append(name)
    finally:
        progress.dismiss()
    if done:
        ui.notify(f"{action.label}: done for {', '.join(done)}", type="positive")
    return done
