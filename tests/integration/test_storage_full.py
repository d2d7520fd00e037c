"""The state directory's disk full (a small tmpfs): writes answer 507 storage_full with
nothing half-made, the database stays whole and the journal gap-free, reads and
/healthz keep answering, and writes resume when space returns, without a restart."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from litestar.testing import TestClient

from appliance.backends.vm import disks
from appliance.backends.vm.seed_iso import SeedFiles, write_seed_iso
from appliance.context import Appliance
from appliance.services.uptime import Uptime
from appliance.store.models import Vm
from tests.support.appliance import admin_password, api_client, built, login, make_images
from tests.support.disk_full import fill, small_tmpfs
from towerbox_core.errors import StorageFull
from towerbox_core.secret_files import write_secret_file

pytestmark = pytest.mark.root

TMPFS_SIZE = "6m"


@pytest.fixture
def state_tmpfs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "state", TMPFS_SIZE) as state:
        yield state


def _open(tmp_path: Path, reserve_mib: int) -> Appliance:
    return built(tmp_path, TOWERBOX_STATE_RESERVE_MIB=str(reserve_mib))


@pytest.fixture
def client_for(tmp_path: Path, state_tmpfs: Path) -> Iterator[Any]:
    opened: list[tuple[Appliance, Any]] = []

    def make(reserve_mib: int) -> tuple[Appliance, TestClient[Any]]:
        app = _open(tmp_path, reserve_mib)
        ctx = api_client(app)
        client = ctx.__enter__()
        opened.append((app, ctx))
        client.headers.update(login(client, "admin", admin_password(app.cfg)))
        return app, client

    try:
        yield make
    finally:
        for app, ctx in opened:
            ctx.__exit__(None, None, None)
            for vm in Vm.select():
                app.vms.delete(
                    app.auth.authenticate(app.cfg.cli_token_file.read_text().strip()), vm.name
                )
            app.close()


def _check_store(db_path: Path) -> list[int]:
    """The database is whole and the journal gap-free; its seqs."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        seqs = [row[0] for row in conn.execute("SELECT seq FROM journal ORDER BY seq")]
        next_seq = conn.execute("SELECT value FROM meta WHERE key = 'journal_next_seq'").fetchone()
    finally:
        conn.close()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert int(next_seq[0]) == seqs[-1] + 1
    return seqs


def _tenants(client: TestClient[Any]) -> set[str]:
    resp = client.get("/api/v1/tenants")
    assert resp.status_code == 200, resp.text
    return {t["name"] for t in resp.json()}


def _domains() -> set[str]:
    conn = libvirt.open("test:///default")
    try:
        return {d.name() for d in conn.listAllDomains()}
    finally:
        conn.close()


def test_below_the_reserve_writes_are_refused_and_resume_when_space_returns(
    client_for: Any, state_tmpfs: Path
) -> None:
    app, client = client_for(1)
    assert client.post("/api/v1/tenants", json={"name": "acme"}).status_code == 201
    made = client.post("/api/v1/vms", json={"name": "keep1", "appliance": "demo", "start": True})
    assert made.status_code == 201, made.text
    keep1_files = sorted(app.cfg.disk_dir.iterdir())
    head = _check_store(app.cfg.db_path)[-1]
    filler = fill(state_tmpfs, leave_bytes=256 * 1024)

    refused = client.post("/api/v1/tenants", json={"name": "beta"})
    assert refused.status_code == 507, refused.text
    problem = refused.json()
    assert problem["code"] == "storage_full"
    assert problem["path"] == str(state_tmpfs)
    assert problem["free_bytes"] < problem["reserve_bytes"] == 1 << 20
    assert "free space" in problem["detail"]

    # A VM create is refused before it makes a disk, a seed or a domain.
    domains = _domains()
    vm = client.post("/api/v1/vms", json={"name": "full1", "appliance": "demo"})
    assert vm.status_code == 507, vm.text
    assert vm.json()["code"] == "storage_full"
    assert _domains() == domains
    assert sorted(app.cfg.disk_dir.iterdir()) == keep1_files

    # Reads keep working, and /healthz says why writes fail.
    assert _tenants(client) == {"acme"}
    assert client.get("/api/v1/vms").status_code == 200
    health = client.get("/healthz").json()
    assert health["status"] == "storage_full"
    assert health["storage"]["full"] is True
    assert any(line.startswith("storage: full") for line in health["summary"])
    # An operator can still log in to look: a login may use the reserve.
    login(client, "admin", admin_password(app.cfg))
    assert _check_store(app.cfg.db_path)[-1] == head
    # Stopping and deleting a VM may use the reserve too: they stop what fills the
    # disk and free space.
    stopped = client.post("/api/v1/vms/keep1/stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["state"] == "shutoff"
    assert client.delete("/api/v1/vms/keep1").status_code == 204
    assert "keep1" not in _domains()
    assert list(app.cfg.disk_dir.iterdir()) == []
    assert client.get("/api/v1/vms").json() == []

    filler.unlink()
    assert client.post("/api/v1/tenants", json={"name": "beta"}).status_code == 201
    assert _tenants(client) == {"acme", "beta"}
    assert client.get("/healthz").json()["status"] == "ok"
    assert _check_store(app.cfg.db_path)[-1] > head


def test_a_write_that_meets_the_full_disk_is_rolled_back_whole(
    client_for: Any, state_tmpfs: Path
) -> None:
    """No reserve: SQLite itself meets the full disk (SQLITE_FULL)."""
    app, client = client_for(0)
    filler = fill(state_tmpfs)
    created: set[str] = set()
    statuses = []
    # The WAL may still hold room for a few writes; the disk is full for the next.
    for i in range(200):
        resp = client.post("/api/v1/tenants", json={"name": f"t{i}", "description": "x" * 2000})
        statuses.append(resp.status_code)
        assert resp.status_code in (201, 507), resp.text
        if resp.status_code == 201:
            created.add(f"t{i}")
            continue
        assert resp.json()["code"] == "storage_full"
        break
    assert statuses[-1] == 507, statuses

    assert _tenants(client) == created  # nothing half-created
    seqs = _check_store(app.cfg.db_path)
    health = client.get("/healthz").json()
    assert health["status"] == "storage_full" and health["storage"]["full"] is True
    # Refused at once while the disk has not gained space.
    again = client.post("/api/v1/tenants", json={"name": "late"})
    assert again.status_code == 507 and again.json()["code"] == "storage_full"

    filler.unlink()
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.post("/api/v1/tenants", json={"name": "late"}).status_code == 201
    assert _tenants(client) == created | {"late"}
    assert _check_store(app.cfg.db_path)[-1] > seqs[-1]


def _reboot(tmp_path: Path, boot: str) -> None:
    """What a host reboot changes for the appliance's start: the kernel's boot id."""
    boot_id = tmp_path / "host" / "proc" / "sys" / "kernel" / "random" / "boot_id"
    boot_id.parent.mkdir(parents=True, exist_ok=True)
    boot_id.write_text(boot + "\n")


def _starts(client: TestClient[Any]) -> list[str]:
    page = client.get("/api/v1/journal", params={"kind": "node.started"}).json()
    return [e["state"]["boot_id"] for e in page["entries"]]


def test_a_node_that_rebooted_onto_a_full_disk_starts_and_serves_reads(
    tmp_path: Path, state_tmpfs: Path
) -> None:
    _open(tmp_path, 1).close()  # makes the host fixture the boot id lives in
    _reboot(tmp_path, "boot-1")
    _open(tmp_path, 1).close()
    _reboot(tmp_path, "boot-2")
    filler = fill(state_tmpfs, leave_bytes=256 * 1024)
    # Below the reserve: the start may use it, and is journalled at once.
    app = _open(tmp_path, 1)
    try:
        with api_client(app) as client:
            client.headers.update(login(client, "admin", admin_password(app.cfg)))
            assert client.get("/api/v1/tenants").status_code == 200
            assert client.get("/healthz").json()["status"] == "storage_full"
            assert _starts(client) == ["boot-2"]
    finally:
        app.close()

    # No room at all (the database's write-ahead log kept open by a reader): the node
    # starts, serves reads, and journals its start at the first beat with room.
    reader = sqlite3.connect(app.cfg.db_path)
    try:
        reader.execute("SELECT count(*) FROM journal").fetchone()
        _reboot(tmp_path, "boot-3")
        filler.unlink()
        filler = fill(state_tmpfs)
        app = _open(tmp_path, 1)
        try:
            with api_client(app) as client:
                # No room even for a login: a token the node already holds still reads.
                token = app.cfg.cli_token_file.read_text().strip()
                client.headers["Authorization"] = f"Bearer {token}"
                assert client.get("/api/v1/tenants").status_code == 200
                assert client.get("/healthz").json()["status"] == "storage_full"
                app.monitor_job()  # a sweep: the start still cannot be journalled
                assert _starts(client) == ["boot-2"]
                filler.unlink()
                app.monitor_job()
                assert _starts(client) == ["boot-2", "boot-3"]
                assert client.get("/healthz").json()["status"] == "ok"
        finally:
            app.close()
    finally:
        reader.close()
    _check_store(app.cfg.db_path)


def test_no_room_for_the_write_ahead_log_fails_the_start_with_storage_full(
    tmp_path: Path, state_tmpfs: Path
) -> None:
    _open(tmp_path, 1).close()  # the last connection closed: no -wal, no -shm left
    fill(state_tmpfs)
    with pytest.raises(StorageFull, match="cannot open the state database") as refused:
        _open(tmp_path, 1)
    assert refused.value.code == "storage_full"


def test_disk_and_seed_writers_answer_storage_full_and_leave_nothing(
    tmp_path: Path, state_tmpfs: Path
) -> None:
    make_images(tmp_path / "images")
    disk_dir = state_tmpfs / "disks"
    disk_dir.mkdir()
    filler = fill(state_tmpfs)
    with pytest.raises(StorageFull, match="cannot create the disk"):
        disks.create_overlay(tmp_path / "images" / "base.qcow2", disk_dir / "vm-0.qcow2")
    with pytest.raises(StorageFull, match="cannot create the disk"):
        disks.create_blank(disk_dir / "vm-1.qcow2", 1)
    seed = SeedFiles("instance-id: x\n", "#cloud-config\n", "{}\n")
    with pytest.raises(StorageFull, match="cannot write the cloud-init seed"):
        write_seed_iso(disk_dir / "vm-seed.iso", seed)
    assert list(disk_dir.iterdir()) == []  # no partial overlay, seed or temporary file
    filler.unlink()
    disks.create_overlay(tmp_path / "images" / "base.qcow2", disk_dir / "vm-0.qcow2")
    write_seed_iso(disk_dir / "vm-seed.iso", seed)
    assert sorted(p.name for p in disk_dir.iterdir()) == ["vm-0.qcow2", "vm-seed.iso"]


def test_a_first_start_on_a_full_disk_leaves_no_admin_without_a_password(
    tmp_path: Path, state_tmpfs: Path
) -> None:
    filler = fill(state_tmpfs, leave_bytes=512 * 1024)  # room for files, not the reserve
    with pytest.raises(StorageFull):
        _open(tmp_path, 1)
    filler.unlink()
    app = _open(tmp_path, 1)
    try:
        with api_client(app) as client:
            login(client, "admin", admin_password(app.cfg))  # the file's password works
    finally:
        app.close()


def test_secret_and_alive_files_keep_their_last_content_on_a_full_disk(
    tmp_path: Path, state_tmpfs: Path
) -> None:
    secret = state_tmpfs / "admin-password"
    write_secret_file(secret, "old\n")
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("boot-1\n")
    uptime = Uptime(state_tmpfs / "alive", boot_id)
    uptime.beat()
    last_beat = (state_tmpfs / "alive").read_text()
    filler = fill(state_tmpfs)

    with pytest.raises(StorageFull, match="admin-password"):
        write_secret_file(secret, "new\n")
    assert secret.read_text() == "old\n"
    uptime.beat()
    assert (state_tmpfs / "alive").read_text() == last_beat
    assert sorted(p.name for p in state_tmpfs.iterdir()) == ["admin-password", "alive", "filler"]

    filler.unlink()
    write_secret_file(secret, "new\n")
    assert secret.read_text() == "new\n"
    uptime.beat()
    assert (state_tmpfs / "alive").read_text() != last_beat
