"""peewee models of the registry database, the same on SQLite and PostgreSQL.

Times the registry itself records are integer milliseconds since the epoch (UTC):
portable, indexable and cheap to compare in SQL on both engines. Times the nodes
report (``created_at`` of a journal entry, an object's ``as_of``) are kept as the
text the node sent: informational only, since order comes from seq, never clocks.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any, overload

import peewee

db_proxy = peewee.DatabaseProxy()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def tuples(query: Any) -> Iterator[tuple[Any, ...]]:
    """A query's rows as plain tuples (the peewee stubs type ``.tuples()`` as models)."""
    yield from query.tuples().iterator()


@overload
def ms_to_iso(value: int) -> str: ...
@overload
def ms_to_iso(value: int | None) -> str | None: ...
def ms_to_iso(value: int | None) -> str | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC).isoformat()


class BaseModel(peewee.Model):
    class Meta:
        database = db_proxy
        legacy_table_names = False


class SchemaVersion(BaseModel):
    """One row: the schema version the migrations have brought the database to."""

    id = peewee.IntegerField(primary_key=True)
    version = peewee.IntegerField()


class Operator(BaseModel):
    id = peewee.AutoField()
    username = peewee.CharField(unique=True, max_length=63)
    password_hash = peewee.TextField()
    role = peewee.CharField(max_length=16)  # admin | viewer
    disabled = peewee.BooleanField(default=False)
    created_at = peewee.BigIntegerField(default=now_ms)


class OperatorToken(BaseModel):
    id = peewee.AutoField()
    operator_id: int
    operator = peewee.ForeignKeyField(Operator, on_delete="CASCADE", backref="tokens")
    # SHA-256 of a 256-bit random token: a KDF per request would buy nothing.
    token_hash = peewee.CharField(unique=True, max_length=64)
    name = peewee.CharField(max_length=63)
    kind = peewee.CharField(max_length=16)  # login | api | cli
    created_at = peewee.BigIntegerField(default=now_ms)
    expires_at = peewee.BigIntegerField(null=True)


class Site(BaseModel):
    id = peewee.AutoField()
    name = peewee.CharField(unique=True, max_length=63)
    region = peewee.CharField(max_length=63, default="", index=True)
    labels = peewee.TextField(default="{}")  # JSON object; SiteLabel indexes it
    secret_hash = peewee.CharField(unique=True, max_length=64, null=True)
    hostname = peewee.CharField(max_length=253, default="")
    created_at = peewee.BigIntegerField(default=now_ms)
    enrolled_at = peewee.BigIntegerField(null=True)
    last_contact = peewee.BigIntegerField(null=True, index=True)
    # Highest seq up to which the registry holds the site's journal, gaps allowed
    # only at or below compacted_through (the node compacted those for good).
    acked_seq = peewee.BigIntegerField(default=0)
    compacted_through = peewee.BigIntegerField(default=0)
    heartbeat = peewee.TextField(null=True)  # the last Heartbeat, as JSON
    # The node's journal head from its last heartbeat (schema 5): lag is this less
    # acked_seq. A column, not the JSON above, so /metrics aggregates it in SQL.
    reported_head = peewee.BigIntegerField(null=True)
    # Entries and batches stored for this site (schema 5), bumped in the ingest
    # transaction that already updates this row: counters in the database are right
    # whichever worker served the batch or answers the scrape.
    ingested_entries = peewee.BigIntegerField(default=0)
    ingested_batches = peewee.BigIntegerField(default=0)
    # The journal epoch the site's current node writes (schema 7): re-binding the site
    # to a new node archives the journal and starts the next one from seq 1.
    epoch = peewee.BigIntegerField(default=1)
    # The host facts and versions of the last heartbeat that carried them (schema 8),
    # with their hash: a heartbeat that carries only the hash leaves them as they are.
    # One indexed column per version, so the fleet's skew is a GROUP BY.
    host_facts = peewee.TextField(null=True)  # JSON object
    facts_hash = peewee.CharField(max_length=64, null=True)
    towerbox_version = peewee.CharField(max_length=64, null=True, index=True)
    agent_version = peewee.CharField(max_length=64, null=True, index=True)
    gpu_driver_version = peewee.CharField(max_length=64, null=True, index=True)
    vgpu_manager_version = peewee.CharField(max_length=64, null=True, index=True)


class SiteLabel(BaseModel):
    site_id: int
    site = peewee.ForeignKeyField(Site, on_delete="CASCADE")
    key = peewee.CharField(max_length=63)
    value = peewee.CharField(max_length=63)

    class Meta:
        primary_key = peewee.CompositeKey("site", "key")
        indexes = ((("key", "value"), False),)


class EnrollmentToken(BaseModel):
    id = peewee.AutoField()
    site_id: int
    site = peewee.ForeignKeyField(Site, on_delete="CASCADE")
    token_hash = peewee.CharField(unique=True, max_length=64)
    created_at = peewee.BigIntegerField(default=now_ms)
    expires_at = peewee.BigIntegerField()
    used_at = peewee.BigIntegerField(null=True)


class JournalRow(BaseModel):
    """One node journal entry, exactly as the node sent it; (site, seq) is unique."""

    site_id: int
    site = peewee.ForeignKeyField(Site, on_delete="CASCADE")
    seq = peewee.BigIntegerField()
    kind = peewee.CharField(max_length=64)
    object_type = peewee.CharField(max_length=64)
    object_id = peewee.CharField(max_length=255)
    state = peewee.TextField()  # JSON; "null" when the object was deleted
    created_at = peewee.CharField(max_length=64, null=True)  # node time, as sent
    actor = peewee.TextField(null=True)  # JSON Actor as sent (schema 2); null before

    class Meta:
        table_name = "journal"
        primary_key = peewee.CompositeKey("site", "seq")


class ObjectRow(BaseModel):
    """Current observed state of one object of a site: the fold of its journal entries.

    name/status/tenant/role are copied out of the state at ingest so that fleet
    queries filter on indexed columns instead of parsing JSON.
    """

    site_id: int
    site = peewee.ForeignKeyField(Site, on_delete="CASCADE")
    object_type = peewee.CharField(max_length=64)
    object_id = peewee.CharField(max_length=255)
    state = peewee.TextField()
    seq = peewee.BigIntegerField()
    as_of = peewee.CharField(max_length=64, null=True)  # node time of the last entry
    name = peewee.CharField(max_length=255, null=True)
    status = peewee.CharField(max_length=32, null=True)
    tenant = peewee.CharField(max_length=63, null=True)
    role = peewee.CharField(max_length=32, null=True)

    class Meta:
        table_name = "objects"
        primary_key = peewee.CompositeKey("site", "object_type", "object_id")
        indexes = (
            (("object_type", "site", "object_id"), False),
            (("object_type", "status"), False),
            (("object_type", "tenant"), False),
            (("object_type", "role"), False),
        )


class DesiredDoc(BaseModel):
    """One version of a desired-state document for a site or a label group."""

    id = peewee.AutoField()
    scope = peewee.CharField(max_length=140)  # "site:<name>" | "group:<label>=<value>"
    kind = peewee.CharField(max_length=16)
    version = peewee.IntegerField()
    document = peewee.TextField()
    etag = peewee.CharField(max_length=64)
    current = peewee.BooleanField(default=True)
    created_at = peewee.BigIntegerField(default=now_ms)
    created_by = peewee.CharField(max_length=63, default="")

    class Meta:
        table_name = "desired"
        indexes = (
            (("scope", "kind", "version"), True),
            (("scope", "current"), False),
        )


class ConflictRow(BaseModel):
    """A desired document a node rejected or applied with a conflict (from its journal)."""

    site_id: int
    site = peewee.ForeignKeyField(Site, on_delete="CASCADE")
    seq = peewee.BigIntegerField()
    kind = peewee.CharField(max_length=16)  # the document kind
    result = peewee.CharField(max_length=16)  # rejected | conflict
    version = peewee.IntegerField(null=True)
    etag = peewee.CharField(max_length=64, null=True)
    reason = peewee.TextField(default="")
    detail = peewee.TextField(default="null")  # the entry's whole state, JSON
    created_at = peewee.CharField(max_length=64, null=True)  # node time

    class Meta:
        table_name = "conflicts"
        primary_key = peewee.CompositeKey("site", "seq")


class PriceBookRow(BaseModel):
    """One version of the registry's price book (schema 3), oldest first by id."""

    id = peewee.AutoField()
    effective_from = peewee.CharField(max_length=64, unique=True)
    book = peewee.TextField()  # the PriceBook, as JSON
    created_at = peewee.BigIntegerField(default=now_ms)
    created_by = peewee.CharField(max_length=63, default="")

    class Meta:
        table_name = "price_book"


class BlobRow(BaseModel):
    """A content-addressed file the registry serves to enrolled agents (schema 4).

    The bytes live in ``<state_dir>/blobs/<sha256>``; the row exists only once the
    file is there, whole and verified.
    """

    sha256 = peewee.CharField(primary_key=True, max_length=64)
    size = peewee.BigIntegerField()
    name = peewee.CharField(max_length=255, default="")
    uploaded_by = peewee.CharField(max_length=63, default="")
    created_at = peewee.BigIntegerField(default=now_ms)

    class Meta:
        table_name = "blob"


class ProvisioningCredential(BaseModel):
    """A long-lived credential (``tbp_...``) new nodes enroll themselves with (schema 7)."""

    id = peewee.AutoField()
    name = peewee.CharField(max_length=63)
    token_hash = peewee.CharField(unique=True, max_length=64)
    labels = peewee.TextField(default="{}")  # JSON: the labels of the sites it creates
    region = peewee.CharField(max_length=63, default="")
    allow = peewee.TextField(default="[]")  # JSON: [{hardware_id, site}]
    created_at = peewee.BigIntegerField(default=now_ms)
    created_by = peewee.CharField(max_length=63, default="")
    expires_at = peewee.BigIntegerField(null=True)
    revoked_at = peewee.BigIntegerField(null=True)
    last_used_at = peewee.BigIntegerField(null=True)
    uses = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "provisioning_credential"


class SiteIdentity(BaseModel):
    """A hardware identity listed for a site, or bound to its node (schema 7).

    The primary key makes an identity belong to one site at most.
    """

    hardware_id = peewee.CharField(primary_key=True, max_length=128)
    site_id: int
    site = peewee.ForeignKeyField(Site, on_delete="CASCADE")
    state = peewee.CharField(max_length=16)  # listed | bound
    replacement = peewee.BooleanField(default=False)
    created_at = peewee.BigIntegerField(default=now_ms)
    bound_at = peewee.BigIntegerField(null=True)

    class Meta:
        table_name = "site_identity"
        indexes = ((("site", "state"), False),)


class SiteEpoch(BaseModel):
    """An ended journal epoch of a site: which node wrote it and how far (schema 7)."""

    site_id: int
    site = peewee.ForeignKeyField(Site, on_delete="CASCADE")
    epoch = peewee.BigIntegerField()
    hostname = peewee.CharField(max_length=253, default="")
    hardware_id = peewee.CharField(max_length=128, null=True)
    started_at = peewee.BigIntegerField(null=True)
    ended_at = peewee.BigIntegerField()
    acked_seq = peewee.BigIntegerField()
    compacted_through = peewee.BigIntegerField()
    entries = peewee.BigIntegerField()

    class Meta:
        table_name = "site_epoch"
        primary_key = peewee.CompositeKey("site", "epoch")


class JournalArchiveRow(BaseModel):
    """A journal entry of an ended epoch, moved out of ``journal`` at re-binding (schema
    8): the live journal keeps its (site, seq) key and ingest its hot path."""

    site_id: int
    site = peewee.ForeignKeyField(Site, on_delete="CASCADE")
    epoch = peewee.BigIntegerField()
    seq = peewee.BigIntegerField()
    kind = peewee.CharField(max_length=64)
    object_type = peewee.CharField(max_length=64)
    object_id = peewee.CharField(max_length=255)
    state = peewee.TextField()
    created_at = peewee.CharField(max_length=64, null=True)
    actor = peewee.TextField(null=True)

    class Meta:
        table_name = "journal_archive"
        primary_key = peewee.CompositeKey("site", "epoch", "seq")


TABLES_V1: tuple[type[BaseModel], ...] = (
    SchemaVersion,
    Operator,
    OperatorToken,
    Site,
    SiteLabel,
    EnrollmentToken,
    JournalRow,
    ObjectRow,
    DesiredDoc,
    ConflictRow,
)

Row = dict[str, Any]
