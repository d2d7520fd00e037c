"""Reconcile racing creates and deletes on the test driver: no false drift.

A reconcile that read libvirt's domains and the database rows at different moments
called a VM created or deleted in between drift (``drift.unknown_domain`` right after
``vm.deleted``), and the registry showed it as a live VM for good.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.context import Appliance
from appliance.store import journal
from appliance.store.models import Vm
from tests.support.appliance import built
from towerbox_core.api.vms import VmCreateRequest

WORKERS = 2
ROUNDS = 12


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    app = built(tmp_path)
    yield app
    for vm in Vm.select():
        app.vms.delete(_root(app), vm.name)
    app.close()


def _root(app: Appliance) -> Any:
    return app.auth.authenticate(app.cfg.cli_token_file.read_text().strip())


def test_reconcile_never_calls_vms_being_created_or_deleted_drift(appliance: Appliance) -> None:
    root = _root(appliance)
    done = threading.Event()
    errors: list[BaseException] = []
    drift_seen: list[dict[str, str]] = []
    runs = 0

    def churn(worker: int) -> None:
        try:
            for i in range(ROUNDS):
                name = f"race-{worker}-{i}"
                appliance.vms.create(root, VmCreateRequest(name=name, appliance="demo"))
                appliance.vms.delete(root, name)
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    def reconcile() -> None:
        nonlocal runs
        try:
            while not done.is_set():
                drift_seen.extend(appliance.reconciler.run().drift)
                runs += 1
        except BaseException as err:
            errors.append(err)

    workers = [threading.Thread(target=churn, args=(w,)) for w in range(WORKERS)]
    checker = threading.Thread(target=reconcile)
    checker.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    checker.join()
    assert errors == []
    assert runs > 0
    assert drift_seen == []
    kinds = [e["kind"] for e in journal.entries(limit=100_000)]
    assert [k for k in kinds if k.startswith("drift.")] == []
    assert kinds.count("vm.created") == kinds.count("vm.deleted") == WORKERS * ROUNDS
