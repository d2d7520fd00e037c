"""The node's last sign of life, and what a start after a reboot journals.

A VM whose desired state is running is not billed while the node is down. A daemon
restart is not a node going down (the VMs keep running under libvirt, and the
monitor journals what it finds), but a reboot is: every VM stopped with the host.
The host's boot id (``/proc/sys/kernel/random/boot_id``) tells the two apart; the
node's last sign of life is the journal time the monitor writes to ``alive`` at each
sweep (without a database write, so it never waits on the write lock).

When the boot id changed, the start journals ``node.started`` with ``rebooted`` and
``last_alive``, and marks every VM row as last seen shut off, in one transaction:
metering stops the VMs' running usage at ``last_alive`` (at most one monitor interval
after the node really went down); the VMs the appliance starts again at boot
(vm_boot) are journalled running as they start, any other from the monitor's next
sweep that sees it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from appliance.store import journal
from appliance.store.models import Meta, Vm
from towerbox_core.errors import StorageFull
from towerbox_core.metering.fold import ACTIVE_STATES, NODE_STARTED

log = logging.getLogger(__name__)

_BOOT_ID = "boot_id"
BOOT_ID = "sys/kernel/random/boot_id"  # below procfs


class Uptime:
    def __init__(self, alive_file: Path, boot_id_file: Path) -> None:
        self._alive = alive_file
        self._boot_id_file = boot_id_file
        self._start_pending = False  # a start the full disk kept from being recorded
        self._beat_failing = False

    def beat(self) -> None:
        """Record now (journal time) as the node's last sign of life."""
        # The last beat before a reboot stays the node's last sign of life until the
        # start is journalled.
        if self._start_pending:
            self._record_start(quiet=True)
            if self._start_pending:
                return
        # Replaced whole: on a full disk the last beat that fitted stays readable.
        tmp = self._alive.with_name(self._alive.name + ".tmp")
        try:
            tmp.write_text(journal.now().isoformat())
            os.replace(tmp, self._alive)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            if not self._beat_failing:  # once, not at every sweep
                log.warning(
                    "cannot record the node's last sign of life in %s: %s", self._alive, err
                )
            self._beat_failing = True
            return
        if self._beat_failing:
            log.info("the node's last sign of life is recorded again in %s", self._alive)
            self._beat_failing = False

    def started(self) -> bool:
        """Journal a start after a reboot; True when the host rebooted since the last run.

        With the state disk full the node starts all the same (it must run its VMs
        and show itself); the start is journalled at the first beat that finds room.
        """
        self._start_pending = True
        return self._record_start(quiet=False)

    def _record_start(self, quiet: bool) -> bool:
        try:
            rebooted = self._journal_start()
        except StorageFull as err:
            if not quiet:
                log.error(
                    "this start is not journalled yet (%s); it is as soon as the disk has room",
                    err.message,
                )
            return False
        self._start_pending = False
        return rebooted

    def _journal_start(self) -> bool:
        boot_id = self._read_boot_id()
        if boot_id is None:
            return False
        # May use the disk's reserve: a node that rebooted with its disk full must
        # still start, show itself and bill the reboot right.
        with journal.write_transaction(may_use_reserve=True):
            row = Meta.get_or_none(Meta.key == _BOOT_ID)
            Meta.insert(key=_BOOT_ID, value=boot_id).on_conflict_replace().execute()
            if row is None or row.value == boot_id:
                return False  # the first start, or the daemon restarted on the same boot
            last_alive = self._last_alive()
            ran = [vm.name for vm in Vm.select(Vm.name).where(Vm.observed_state.in_(ACTIVE_STATES))]
            Vm.update(observed_state="shutoff").where(
                Vm.observed_state.in_(ACTIVE_STATES)
            ).execute()
            journal.append(
                NODE_STARTED,
                "node",
                "node",
                {
                    "rebooted": True,
                    "boot_id": boot_id,
                    "last_alive": last_alive.isoformat() if last_alive else None,
                    "stopped_vms": sorted(ran),
                },
            )
        log.warning(
            "the node rebooted (last alive %s): %d VM(s) were running and stopped with it",
            last_alive.isoformat() if last_alive else "unknown",
            len(ran),
        )
        return True

    def _read_boot_id(self) -> str | None:
        try:
            return self._boot_id_file.read_text().strip() or None
        except OSError as err:
            log.warning(
                "no boot id in %s (%s): reboots are not told apart", self._boot_id_file, err
            )
            return None

    def _last_alive(self) -> dt.datetime | None:
        """The last beat, else the newest journal entry; never after now."""
        found: dt.datetime | None = None
        try:
            found = dt.datetime.fromisoformat(self._alive.read_text().strip())
        except (OSError, ValueError):
            found = None
        newest = journal.newest_time()
        if found is None or (newest is not None and newest > found):
            found = newest  # entries written after the last beat were alive too
        now = journal.now()
        return min(found, now) if found is not None else None
