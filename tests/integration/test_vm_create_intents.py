"""A VM create cut off by a crash (SIGKILL: no undo ran) between its first file and
its row's commit: the next start removes its domain and files, and journals that it
did (``drift.create_undone``: a report the registry does not fold, for a VM that never
existed; vm_intents). The crash harness finds the same case through a real daemon
process (test_crash_consistency.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from appliance.services import vm_intents
from appliance.store import journal
from tests.support.appliance import built
from towerbox_core.api.vms import VmCreateRequest

XML = """<domain type='test'><name>{name}</name><uuid>{uuid}</uuid>
<memory>131072</memory><os><type>hvm</type></os></domain>"""


def test_the_next_start_removes_what_a_killed_create_made(tmp_path: Path) -> None:
    first = built(tmp_path)
    vm_id = str(uuid.uuid4())
    try:
        head = journal.head()
        # What the create had made when it died: its intent, disks, seed and domain.
        vm_intents.begin_create(vm_id, "ghost")
        made = [first.cfg.disk_dir / f"{vm_id}-0.qcow2", first.cfg.disk_dir / f"{vm_id}-seed.iso"]
        for path in made:
            path.write_bytes(b"half")
        first.backend.define(XML.format(name="ghost", uuid=vm_id))
        kept = first.cfg.disk_dir / "not-a-vm-file.qcow2"  # another's: left alone
        kept.write_bytes(b"x")
    finally:
        first.close()
    second = built(tmp_path)
    try:
        assert second.backend.status(vm_id) is None
        assert [p for p in made if p.exists()] == []
        assert kept.exists()
        [entry] = journal.entries(after=head)
        assert (entry["kind"], entry["object_id"]) == (vm_intents.UNDONE, vm_id)
        assert entry["state"]["name"] == "ghost"
        assert set(entry["state"]["removed"]) == {"domain", *(p.name for p in made)}
        assert second.vms.undo_interrupted_creates() == []  # the intent went with them
    finally:
        second.close()


def test_a_committed_create_leaves_no_intent(tmp_path: Path) -> None:
    app = built(tmp_path)
    try:
        root = app.auth.authenticate(app.cfg.cli_token_file.read_text().strip())
        vm_id = app.vms.create(root, VmCreateRequest(name="web", appliance="demo")).id
        assert app.vms.undo_interrupted_creates() == []
        assert app.backend.status(vm_id) is not None
        app.vms.delete(root, "web")
    finally:
        app.close()
