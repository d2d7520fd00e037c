"""peewee models of staged rollouts (schema 6, docs/rollouts.md): a rollout, its
waves and its sites. Everything that moves a rollout on lives in these rows, so any
registry worker, after any restart, continues from the database alone."""

from __future__ import annotations

import peewee

from registry.store.models import BaseModel, Site, now_ms


class RolloutRow(BaseModel):
    """A group's desired document published in waves."""

    id = peewee.AutoField()
    scope = peewee.CharField(max_length=140)  # "group:<label>=<value>"
    kind = peewee.CharField(max_length=16)
    doc_id = peewee.IntegerField()  # the DesiredDoc this rollout publishes
    version = peewee.IntegerField()
    etag = peewee.CharField(max_length=64)
    previous_doc_id = peewee.IntegerField(null=True)
    previous_version = peewee.IntegerField(null=True)
    rollback_version = peewee.IntegerField(null=True)
    state = peewee.CharField(max_length=16, index=True)
    reason = peewee.TextField(default="")
    current_wave = peewee.IntegerField(default=0)
    canary = peewee.IntegerField()
    soak_s = peewee.FloatField()
    canary_failure_pct = peewee.FloatField()
    failure_pct = peewee.FloatField()
    offline_wait_s = peewee.FloatField()
    created_by = peewee.CharField(max_length=63, default="")
    created_at = peewee.BigIntegerField(default=now_ms)
    updated_at = peewee.BigIntegerField(default=now_ms)
    finished_at = peewee.BigIntegerField(null=True)

    class Meta:
        table_name = "rollout"
        indexes = ((("scope", "kind", "state"), False),)


class RolloutWaveRow(BaseModel):
    rollout_id: int
    rollout = peewee.ForeignKeyField(RolloutRow, on_delete="CASCADE")
    wave = peewee.IntegerField()
    percent = peewee.FloatField(null=True)  # None: the canary wave
    state = peewee.CharField(max_length=16, default="pending")
    size = peewee.IntegerField()
    started_at = peewee.BigIntegerField(null=True)
    finished_at = peewee.BigIntegerField(null=True)

    class Meta:
        table_name = "rollout_wave"
        primary_key = peewee.CompositeKey("rollout", "wave")


class RolloutSiteRow(BaseModel):
    """One site of a rollout. Until ``released_at`` is set the site is served
    ``hold_doc_id`` (what it had before; None: no document from this group) in place
    of ``doc_id``: the heartbeat's one query reads exactly this."""

    rollout_id: int
    rollout = peewee.ForeignKeyField(RolloutRow, on_delete="CASCADE")
    site_id: int
    site = peewee.ForeignKeyField(Site, on_delete="CASCADE")
    wave = peewee.IntegerField()
    doc_id = peewee.IntegerField()
    hold_doc_id = peewee.IntegerField(null=True)
    status = peewee.CharField(max_length=16, default="pending")
    reason = peewee.TextField(default="")
    # The site's acked journal seq when released: alerts after it are "new".
    release_seq = peewee.BigIntegerField(null=True)
    released_at = peewee.BigIntegerField(null=True)
    applied_at = peewee.BigIntegerField(null=True)
    finished_at = peewee.BigIntegerField(null=True)

    class Meta:
        table_name = "rollout_site"
        primary_key = peewee.CompositeKey("rollout", "site")
        indexes = (
            (("site", "doc_id"), False),
            (("rollout", "wave", "status"), False),
        )
