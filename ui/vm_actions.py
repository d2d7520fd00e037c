"""VM power actions with confirmation where they destroy, progress, and a closing notice."""

from __future__ import annotations

from dataclasses import dataclass

from nicegui import ui

from ui.api import ApiError, vm_path
from ui.session import UserApi


@dataclass(frozen=True)
class Action:
    key: str
    label: str
    doing: str
    destroys: str | None  # what is lost, asked about before acting; None: no question


ACTIONS = (
    Action("start", "Start", "Starting", None),
    Action("shutdown", "Shut down", "Shutting down", None),
    Action(
        "stop",
        "Force stop",
        "Forcing off",
        "The guest is cut off like a pulled plug; unsaved data is lost.",
    ),
    Action("reboot", "Reboot", "Rebooting", None),
    Action("delete", "Delete", "Deleting", "The VM and its disks are removed for good."),
)
BY_KEY = {a.key: a for a in ACTIONS}


async def confirm(title: str, body: str, yes: str) -> bool:
    with ui.dialog() as dialog, ui.card().props('role="alertdialog"'):
        ui.label(title).classes("text-h6")
        ui.label(body)
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat autofocus")
            ui.button(yes, color="negative", on_click=lambda: dialog.submit(True)).mark(
                "confirm-yes"
            ).props('data-testid="confirm-yes"')
    answer = await dialog
    dialog.delete()
    return bool(answer)


async def run(user: UserApi, action_key: str, names: list[str]) -> list[str]:
    """Run an action on VMs in turn; returns those it succeeded on."""
    action = BY_KEY[action_key]
    if not names:
        ui.notify("Select one or more VMs first.", type="warning")
        return []
    listed = ", ".join(names)
    if action.destroys and not await confirm(
        f"{action.label} {listed}?", action.destroys, f"{action.label} {len(names)} VM(s)"
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
