"""Why a VM meant to run is off outlives the daemon: a restarted appliance rebuilds
each VM's last failed start from the journal, until a start succeeds.

On the libvirt test driver, with the restart made the way the daemon makes it: the
appliance closed and built again on the same state directory (same boot, so no VM is
started at build).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.context import Appliance
from appliance.store import journal
from appliance.store.models import Vm
from tests.support.appliance import admin_password, api_client, built, login
from towerbox_core.errors import BackendError

BROKEN = BackendError("qemu: could not open the model disk", code="libvirt_error")


@pytest.fixture
def restarts(tmp_path: Path) -> Iterator[list[Appliance]]:
    """The appliances built on one state directory, the last one the running daemon."""
    apps = [built(tmp_path)]
    yield apps
    root = apps[-1].auth.authenticate(apps[-1].cfg.cli_token_file.read_text().strip())
    for vm in Vm.select():
        apps[-1].vms.delete(root, vm.name)
    apps[-1].close()


def _restart(apps: list[Appliance], tmp_path: Path) -> Appliance:
    apps[-1].close()
    apps.append(built(tmp_path))
    return apps[-1]


def _attention(app: Appliance, name: str) -> Any:
    with api_client(app) as c:
        c.headers.update(login(c, "admin", admin_password(app.cfg)))
        return c.get(f"/api/v1/vms/{name}").json()["attention"]


def _failed_starts(app: Appliance) -> list[dict[str, Any]]:
    with api_client(app) as c:
        c.headers.update(login(c, "admin", admin_password(app.cfg)))
        entries = c.get("/api/v1/journal?limit=1000&kind=vm.start_failed").json()["entries"]
    return [e["state"] for e in entries]


def test_a_failed_start_is_still_explained_after_a_restart(
    restarts: list[Appliance], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = restarts[0]
    with api_client(app) as c:
        c.headers.update(login(c, "admin", admin_password(app.cfg)))
        assert c.post("/api/v1/vms", json={"name": "sf1", "appliance": "demo"}).status_code == 201

        def broken(_uuid: str) -> None:
            raise BROKEN

        monkeypatch.setattr(app.backend, "start", broken)
        for _ in range(2):  # failing the same way again is journalled once
            failed = c.post("/api/v1/vms/sf1/start")
            assert (failed.status_code, failed.json()["code"]) == (502, "libvirt_error")
    before = _attention(app, "sf1")
    assert before["kind"] == "start_failed"
    assert before["reason"] == "qemu: could not open the model disk [libvirt_error]"
    assert _failed_starts(app) == [
        {"name": "sf1", "code": "libvirt_error", "message": "qemu: could not open the model disk"}
    ]
    monkeypatch.undo()

    app = _restart(restarts, tmp_path)
    after = _attention(app, "sf1")
    assert (after["kind"], after["reason"]) == (before["kind"], before["reason"])
    # Since the first failure: the time the journal has for it, to a few ms.
    since = dt.datetime.fromisoformat(after["since"])
    assert abs(since - dt.datetime.fromisoformat(before["since"])) < dt.timedelta(seconds=1)

    # A start that works ends it, for good: the next restart finds nothing to say.
    with api_client(app) as c:
        c.headers.update(login(c, "admin", admin_password(app.cfg)))
        assert c.post("/api/v1/vms/sf1/start").json()["state"] == "running"
    assert _attention(app, "sf1") is None
    app = _restart(restarts, tmp_path)
    assert _attention(app, "sf1") is None


def test_the_boot_restore_and_gpu_waiting_entries_are_read_back_too(
    restarts: list[Appliance], tmp_path: Path
) -> None:
    app = restarts[0]
    with api_client(app) as c:
        c.headers.update(login(c, "admin", admin_password(app.cfg)))
        for name in ("rf1", "gw1"):
            made = c.post("/api/v1/vms", json={"name": name, "appliance": "demo"})
            assert made.status_code == 201, made.text
    ids = dict(Vm.select(Vm.name, Vm.id).tuples())
    with journal.write_transaction():
        Vm.update(desired_state="running").execute()  # meant to run, as before a reboot
        state = {"name": "rf1", "code": "libvirt_error", "reason": "no such bridge"}
        journal.append("vm.restore_failed", "vm", ids["rf1"], state)
        # As entries were written before they carried the error's code.
        journal.append("vm.gpu_waiting", "vm", ids["gw1"], {"name": "gw1", "reason": "no slice"})

    app = _restart(restarts, tmp_path)
    restored = _attention(app, "rf1")
    assert (restored["kind"], restored["reason"]) == (
        "start_failed",
        "no such bridge [libvirt_error]",
    )
    waiting = _attention(app, "gw1")
    assert (waiting["kind"], waiting["reason"]) == ("waiting_for_gpu", "no slice [gpu_waiting]")
