"""Opening the state database: SQLite in WAL mode, with versioned migrations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import msgspec
import peewee

from appliance.store import space
from appliance.store.models import (
    ALL_MODELS,
    Alert,
    GpuLayout,
    Meta,
    Service,
    ServiceVm,
    TenantPolicy,
    Vm,
    db_proxy,
)
from appliance.store.space import StateSpace
from towerbox_core.errors import ConfigError, StorageFull, is_disk_full

log = logging.getLogger(__name__)

# Below this much free space, a failure to open the database is the full disk's.
_OPEN_ROOM = 256 * 1024

_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    # NORMAL is durable in WAL mode except for the last commits on power loss; the
    # journal and reconcile recover from that, and it keeps writes cheap.
    "synchronous": "normal",
    "busy_timeout": 5000,
}


def _v1_initial(db: peewee.SqliteDatabase) -> None:
    db.create_tables(ALL_MODELS)
    Meta.create(key="journal_next_seq", value="1")


class _StoredLayout(msgspec.Struct):
    gpu_model: str


def _v2_gpu(db: peewee.SqliteDatabase) -> None:
    """GPU layouts get their own table; earlier builds kept them as Meta rows."""
    db.create_tables([GpuLayout])
    for row in Meta.select().where(Meta.key.startswith("gpu_layout:")):
        GpuLayout.create(
            gpu_uuid=row.key.removeprefix("gpu_layout:"),
            gpu_model=msgspec.json.decode(row.value, type=_StoredLayout).gpu_model,
            layout=row.value,
        )
    Meta.delete().where(Meta.key.startswith("gpu_layout:")).execute()


class _StoredDisk(msgspec.Struct):
    size_gib: int | None = None


class _StoredSpec(msgspec.Struct):
    disks: list[_StoredDisk] = []


def _v3_tenant_policy(db: peewee.SqliteDatabase) -> None:
    """Tenants get quotas and grants; VMs record the disk they count against them.

    Version 1 creates the VM table from the current model, so a new database has the
    column already. Existing VMs count their disks' ``size_gib`` (a base image's own
    size is not known without reading the image).
    """
    db.create_tables([TenantPolicy])
    if "disk_gib" in {c.name for c in db.get_columns("vm")}:
        return
    db.execute_sql("ALTER TABLE vm ADD COLUMN disk_gib INTEGER NOT NULL DEFAULT 0")  # type: ignore[no-untyped-call]
    for vm in Vm.select(Vm.id, Vm.spec):
        disks = msgspec.json.decode(vm.spec, type=_StoredSpec).disks
        size = sum(d.size_gib or 0 for d in disks)
        Vm.update(disk_gib=size).where(Vm.id == vm.id).execute()


def _v4_audit(db: peewee.SqliteDatabase) -> None:
    """Journal entries record their actor; tenants get labels.

    Version 1 creates both tables from the current models, so a new database already
    has the columns; entries written before this version keep a null actor.
    """
    if "actor" not in {c.name for c in db.get_columns("journal")}:
        db.execute_sql("ALTER TABLE journal ADD COLUMN actor TEXT")  # type: ignore[no-untyped-call]
    if "labels" not in {c.name for c in db.get_columns("tenant")}:
        db.execute_sql("ALTER TABLE tenant ADD COLUMN labels TEXT NOT NULL DEFAULT '{}'")  # type: ignore[no-untyped-call]


def _v5_services(db: peewee.SqliteDatabase) -> None:
    """Multi-VM services, and which of them each replica VM belongs to."""
    db.create_tables([Service, ServiceVm])


def _v6_alerts(db: peewee.SqliteDatabase) -> None:
    """Alerts the node evaluates: pending, firing and recently resolved."""
    db.create_tables([Alert])


# Append only: each function moves the schema from version i to i + 1.
MIGRATIONS: tuple[Callable[[peewee.SqliteDatabase], None], ...] = (
    _v1_initial,
    _v2_gpu,
    _v3_tenant_policy,
    _v4_audit,
    _v5_services,
    _v6_alerts,
)
SCHEMA_VERSION = len(MIGRATIONS)


def open_database(path: Path, guard: StateSpace | None = None) -> peewee.SqliteDatabase:
    """Open (creating if needed) and migrate the database, and bind the models to it.

    ``guard`` watches the free space of the database's folder (default: no reserve,
    so writes are refused only after one met a full disk).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    guard = guard or StateSpace(path.parent)
    space.install(guard)
    db = peewee.SqliteDatabase(str(path), pragmas=_PRAGMAS)
    db_proxy.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        migrate(db)
    except peewee.OperationalError as err:
        # Opening in WAL mode makes the -wal and -shm files: on a disk with no room
        # for them SQLite says only "disk I/O error".
        free = guard.free_bytes()
        if not is_disk_full(err) and (free is None or free >= _OPEN_ROOM):
            raise
        raise StorageFull(
            f"cannot open the state database {path}: its disk is full ({free} bytes free) "
            "and SQLite needs room for its write-ahead log; free space there and start "
            "again",
            path=str(path.parent),
            free_bytes=free,
        ) from err
    # The database holds password and token hashes: keep it (and its WAL) private.
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.chmod(0o600)
    return db


def migrate(db: peewee.SqliteDatabase) -> None:
    current = int(db.pragma("user_version"))
    if current > SCHEMA_VERSION:
        raise ConfigError(
            f"state database schema is version {current}, newer than this Towerbox "
            f"({SCHEMA_VERSION}); upgrade Towerbox or restore a matching backup",
            code="schema_too_new",
        )
    for version in range(current, SCHEMA_VERSION):
        with db.atomic():
            MIGRATIONS[version](db)
            db.pragma("user_version", version + 1)
        log.info("state database migrated to schema version %d", version + 1)
