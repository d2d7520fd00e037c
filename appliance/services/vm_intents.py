"""What a VM create is about to make, written down before it makes it.

A create makes disk files, then a libvirt domain, then commits the row. A daemon
killed in between (OOM, power cut) runs no undo: the files and the domain would stay
with no row to own them, and the reconciler, which never deletes a domain it cannot
place, would call the domain drift for ever. So the create records its intent (the
VM's id) first, and the commit of the row removes it in the same transaction; at the
next start, an intent still there names exactly what a killed create left, and that
is taken away.

The removal is journalled (``drift.create_undone``, with the VM's name and what was
removed), in the transaction that drops the intent: the journal says what the restart
found and did, once. A ``drift.`` kind is a report the registry does not fold into its
objects: the VM never existed there (no ``vm.created`` was written), and no entry may
make it appear.
"""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.backends.vm.protocol import VmBackend
from appliance.services.vm_power import is_active
from appliance.store import journal
from appliance.store.models import Meta, Vm
from towerbox_core.errors import TowerboxError

log = logging.getLogger(__name__)

_PREFIX = "vm_creating:"
UNDONE = "drift.create_undone"


def begin_create(vm_id: str, name: str) -> None:
    """Before the first file or domain of VM ``vm_id`` is made."""
    with journal.write_transaction():
        Meta.insert(key=_PREFIX + vm_id, value=name).on_conflict_replace().execute()


def end_create(vm_id: str) -> None:
    """The create committed its row, or undid what it made; in the row's transaction."""
    Meta.delete().where(Meta.key == _PREFIX + vm_id).execute()


def undo_interrupted_creates(backend: VmBackend, folders: list[Path]) -> list[str]:
    """At start, before the reconciler runs: remove the domain and the files of every
    create a killed daemon left without a row; the names of those VMs."""
    undone = []
    for intent in Meta.select().where(Meta.key.startswith(_PREFIX)):
        vm_id = intent.key.removeprefix(_PREFIX)
        if Vm.get_or_none(Vm.id == vm_id) is not None:
            with journal.write_transaction():  # the row committed: nothing to undo
                end_create(vm_id)
            continue
        try:
            removed = _remove(backend, vm_id, folders)
        except TowerboxError as err:
            # Kept: the next start tries again, and the domain shows as drift.
            log.error("VM %s: half-made create not undone: %s", intent.value, err.message)
            continue
        log.warning(
            "VM %s: a create cut off by a crash was undone (removed: %s)",
            intent.value,
            ", ".join(removed) or "nothing",
            extra={"vm": intent.value},
        )
        with journal.write_transaction():
            journal.append(
                UNDONE,
                "vm",
                vm_id,
                {
                    "name": intent.value,
                    "reason": "the daemon died before the create committed its row",
                    "removed": removed,
                },
            )
            end_create(vm_id)
        undone.append(intent.value)
    return undone


def _remove(backend: VmBackend, vm_id: str, folders: list[Path]) -> list[str]:
    """Take away the VM's domain and files; what was there ("domain", file names)."""
    removed = []
    if is_active(backend, vm_id):
        backend.destroy(vm_id)
    if backend.status(vm_id) is not None:
        backend.undefine(vm_id)
        removed.append("domain")
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.glob(f"{vm_id}*")):
                path.unlink(missing_ok=True)
                removed.append(path.name)
    return removed
