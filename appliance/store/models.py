"""peewee models of the node's state database.

Bound through ``db_proxy`` so the daemon, the CLI and tests each open their own file.
JSON columns hold msgspec-encoded structs (specs, allocations, journal states).
"""

from __future__ import annotations

import datetime as dt

import peewee

db_proxy = peewee.DatabaseProxy()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class BaseModel(peewee.Model):
    class Meta:
        database = db_proxy


class Meta(BaseModel):
    """Small key/value facts: node id, the journal's next sequence number."""

    key = peewee.CharField(primary_key=True)
    value = peewee.TextField()


class Tenant(BaseModel):
    name = peewee.CharField(primary_key=True, max_length=63)
    description = peewee.TextField(default="")
    labels = peewee.TextField(default="{}")  # JSON object of str -> str (schema 4)
    created_at = peewee.DateTimeField(default=utcnow)


class User(BaseModel):
    id = peewee.AutoField()
    tenant_id: str | None  # peewee's accessor for the foreign key's raw value
    username = peewee.CharField(unique=True, max_length=63)
    password_hash = peewee.TextField()
    role = peewee.CharField(max_length=32)  # infra-admin | tenant-admin | tenant-user | viewer
    tenant = peewee.ForeignKeyField(Tenant, null=True, on_delete="RESTRICT", column_name="tenant")
    disabled = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)


class Token(BaseModel):
    id = peewee.AutoField()
    user_id: int  # peewee's accessor for the foreign key's raw value
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="tokens")
    # SHA-256 of the token: tokens are 256-bit random, so a fast hash is enough to
    # make a stolen database useless without making every request pay for a KDF.
    token_hash = peewee.CharField(unique=True, max_length=64)
    name = peewee.CharField(max_length=63)
    kind = peewee.CharField(max_length=16)  # login | api | cli
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField(null=True)


class Vm(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)  # also the libvirt domain UUID
    name = peewee.CharField(unique=True, max_length=63)
    spec = peewee.TextField()  # VmSpec as JSON
    allocation = peewee.TextField()  # Allocation as JSON
    desired_state = peewee.CharField(max_length=16)  # running | stopped
    # Last state the monitor saw (libvirt's word); a change is journalled once.
    observed_state = peewee.CharField(max_length=16, default="unknown")
    role = peewee.CharField(max_length=16, index=True)
    tenant = peewee.CharField(max_length=63, null=True, index=True)
    # What the VM's disks count against its tenant's disk quota, in GiB: each disk's
    # size, or its base image's virtual size (schema 3; earlier VMs count size_gib only).
    disk_gib = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)


class JournalEntry(BaseModel):
    """One state change, shipped to the registry by the agent in seq order."""

    seq = peewee.BigIntegerField(primary_key=True)
    kind = peewee.CharField(max_length=48)  # vm.created, vm.state, drift.unknown_domain, ...
    object_type = peewee.CharField(max_length=32)
    object_id = peewee.CharField(max_length=128)
    state = peewee.TextField()  # JSON: the object's new state, or null when deleted
    # JSON Actor: who made the change (user or token, tenant, or a node job); schema 4.
    actor = peewee.TextField(null=True)
    # Informational only: ordering comes from seq, never from clocks.
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "journal"


class GpuLayout(BaseModel):
    """Each GPU's last committed MIG layout, roles and owners included.

    The layout the node re-creates after a reboot and rolls back to after a failed
    reshape; written in the same transaction as the journal entries that announce it.
    """

    gpu_uuid = peewee.CharField(primary_key=True, max_length=96)
    gpu_model = peewee.CharField(max_length=48)
    layout = peewee.TextField()  # Layout as JSON
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "gpu_layout"


class TenantPolicy(BaseModel):
    """A tenant's quotas and grants as JSON (``towerbox_core.api.tenants`` structs).

    No row, or ``quotas`` null: the tenant follows the node's ``[tenants]`` defaults.
    """

    tenant = peewee.ForeignKeyField(
        Tenant, primary_key=True, on_delete="CASCADE", column_name="tenant"
    )
    quotas = peewee.TextField(null=True)
    grants = peewee.TextField(default="{}")
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "tenant_policy"


class Service(BaseModel):
    """A multi-VM service of a tenant: its template as deployed, and where it stands."""

    name = peewee.CharField(primary_key=True, max_length=63)
    tenant = peewee.CharField(max_length=63, index=True)
    template = peewee.TextField()  # ServiceTemplate as JSON, per-role values merged in
    # Role name -> the generation of its current configuration (bumped by an update).
    generations = peewee.TextField(default="{}")
    state = peewee.CharField(max_length=16)  # deploying | ready | failed | updating ...
    message = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "service"


class ServiceVm(BaseModel):
    """Which service and role a VM is a replica of (schema 5); gone with the VM."""

    vm = peewee.ForeignKeyField(Vm, primary_key=True, on_delete="CASCADE", column_name="vm_id")
    vm_id: str  # peewee's accessor for the foreign key's raw value
    service = peewee.ForeignKeyField(
        Service, on_delete="CASCADE", column_name="service", backref="replicas"
    )
    role = peewee.CharField(max_length=63)
    number = peewee.IntegerField()  # the n of <service>-<role>-<n>
    generation = peewee.IntegerField(default=0)

    class Meta:
        table_name = "service_vm"


class Alert(BaseModel):
    """An alert instance: pending (its condition holds, not yet for its rule's ``for``),
    firing, or resolved. Kept here so a restarted daemon neither fires an alert again
    nor forgets one that is pending."""

    id = peewee.AutoField()
    rule = peewee.CharField(max_length=48)
    object = peewee.CharField(max_length=200)
    severity = peewee.CharField(max_length=16)
    tenant = peewee.CharField(max_length=63, null=True, index=True)  # whose object; None: node
    status = peewee.CharField(max_length=16, index=True)  # pending | firing | resolved
    message = peewee.TextField()
    since = peewee.FloatField()  # wall clock the condition was first seen
    fired_at = peewee.FloatField(null=True)
    resolved_at = peewee.FloatField(null=True)
    acked_by = peewee.CharField(max_length=63, null=True)
    acked_at = peewee.FloatField(null=True)

    class Meta:
        table_name = "alert"


# The tables of schema version 1; later tables are created by their own migration.
ALL_MODELS: tuple[type[BaseModel], ...] = (Meta, Tenant, User, Token, Vm, JournalEntry)
