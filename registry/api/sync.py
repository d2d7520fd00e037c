"""What agents call: enroll, journal up, heartbeat, desired state down.

These handlers are async; each database call is one short transaction on indexed
rows, run through ``Registry.run_db`` (on the event loop with SQLite, in a worker
thread with PostgreSQL). The journal body is read, size-checked and decoded here,
once, with msgspec.
"""

from __future__ import annotations

import zlib

import msgspec
from litestar import Controller, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED

from registry.api.auth import SiteRequest
from registry.api.deps import RegistryDep
from registry.errors import BadRequest, PayloadTooLarge
from registry.services.versions import check_heartbeat_versions
from registry.store.ingest import MAX_SEQ, ingest
from registry.store.models import Site, now_ms
from towerbox_core.api.fleet import EnrollReply, EnrollRequest, HeartbeatReply, JournalHead
from towerbox_core.errors import TowerboxError
from towerbox_core.json_depth import MAX_JSON_DEPTH, MAX_WIRE_JSON_DEPTH, check_json_depth
from towerbox_core.openapi_problems import problem_responses
from towerbox_core.wire import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    DesiredDocument,
    Heartbeat,
    JournalAck,
    JournalBatch,
)

# gzip adds a few bytes per 32 KiB block to data it cannot shrink.
_MAX_WIRE_BYTES = MAX_BATCH_BYTES + MAX_BATCH_BYTES // 64 + 1024
_batch_decoder = msgspec.json.Decoder(JournalBatch)
_heartbeat_decoder = msgspec.json.Decoder(Heartbeat)
# What the routes that decode their own body take, for the OpenAPI document.
RAW_BODIES = {"POST /api/v1/sync/journal": JournalBatch, "POST /api/v1/sync/heartbeat": Heartbeat}


def decode_batch(body: bytes, encoding: str) -> JournalBatch:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        body = _gunzip(body)
    elif encoding not in ("", "identity"):
        raise BadRequest(
            f"Content-Encoding {encoding!r} is not supported; send gzip",
            code="unsupported_encoding",
        )
    if len(body) > MAX_BATCH_BYTES:
        raise PayloadTooLarge(f"a journal batch is at most {MAX_BATCH_BYTES} bytes decompressed")
    # Before decoding: the decoder itself fails on deep enough nesting.
    check_json_depth(body, MAX_WIRE_JSON_DEPTH)
    try:
        batch = _batch_decoder.decode(body)
    except msgspec.ValidationError as err:
        raise BadRequest(f"not a journal batch: {err}", code="invalid_batch") from err
    except msgspec.DecodeError as err:
        raise BadRequest(f"the batch is not valid JSON: {err}", code="invalid_batch") from err
    if len(batch.entries) > MAX_BATCH_ENTRIES:
        raise PayloadTooLarge(
            f"{len(batch.entries)} entries; a journal batch holds at most {MAX_BATCH_ENTRIES}"
        )
    return batch


def _gunzip(body: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        # Bounded: a small gzip bomb must not inflate into memory beyond the limit.
        out = inflater.decompress(body, MAX_BATCH_BYTES + 1)
    except zlib.error as err:
        raise BadRequest(f"the body is not valid gzip: {err}", code="invalid_gzip") from err
    if len(out) > MAX_BATCH_BYTES:
        raise PayloadTooLarge(f"a journal batch is at most {MAX_BATCH_BYTES} bytes decompressed")
    if not inflater.eof or inflater.unused_data:
        raise BadRequest("the gzip body is truncated or has trailing data", code="invalid_gzip")
    return out


class SyncController(Controller):
    path = "/api/v1"
    tags = ("sync",)

    @post(
        "/enroll",
        sync_to_thread=False,
        status_code=HTTP_200_OK,
        responses=problem_responses(401),
    )
    def enroll(self, data: JSONBody[EnrollRequest], registry: RegistryDep) -> EnrollReply:
        return registry.sites.enroll(data.token, data.hostname)

    # The body is read raw (gzip or not): RAW_BODIES documents it.
    @post(
        "/sync/journal",
        status_code=HTTP_200_OK,
        request_max_body_size=_MAX_WIRE_BYTES,
    )
    async def journal(self, request: SiteRequest, registry: RegistryDep) -> JournalAck:
        try:
            batch = decode_batch(
                await _batch_body(request), request.headers.get("content-encoding", "")
            )
            return await registry.run_db(ingest, request.user.site_id, batch, now_ms())
        except TowerboxError as err:
            # Refusals only: a failing database is a 5xx, seen in the request latency.
            if err.status < 500:
                registry.metrics.ingest_refusals.labels(code=err.code).inc()
            raise

    @get("/sync/journal/head")
    async def journal_head(self, request: SiteRequest, registry: RegistryDep) -> JournalHead:
        return await registry.run_db(_journal_head, request.user.site_id)

    @post(
        "/sync/heartbeat",
        status_code=HTTP_200_OK,
        request_max_body_size=256 * 1024,
    )
    async def heartbeat(self, request: SiteRequest, registry: RegistryDep) -> HeartbeatReply:
        body = await request.body()
        check_json_depth(body, MAX_JSON_DEPTH)
        try:
            beat = _heartbeat_decoder.decode(body)
        except msgspec.DecodeError as err:  # ValidationError is a DecodeError
            raise BadRequest(f"not a heartbeat: {err}", code="invalid_heartbeat") from err
        if not 0 <= beat.appliance_head <= MAX_SEQ:
            # Kept in a BIGINT column: past it, the database would answer 500.
            raise BadRequest(
                f"appliance_head {beat.appliance_head} out of range (0 to 2^63-1)",
                code="invalid_heartbeat",
            )
        check_heartbeat_versions(beat)
        site = request.user
        wanted = await registry.run_db(registry.sites.record_heartbeat, site.site_id, beat)
        index = await registry.run_db(registry.desired.index, site.site_id, site.name)
        return HeartbeatReply(desired=index, facts_wanted=wanted)

    @get("/sync/desired/{kind:str}")
    async def desired(
        self, request: SiteRequest, kind: FromPath[str], registry: RegistryDep
    ) -> Response[DesiredDocument | None]:
        site = request.user
        doc = await registry.run_db(registry.desired.effective, site.site_id, site.name, kind)
        headers = {"ETag": f'"{doc.etag}"'}
        wanted = request.headers.get("if-none-match")
        if wanted and _etag_matches_tag(wanted, doc.etag):
            return Response(None, status_code=HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(doc, headers=headers)


async def _batch_body(request: SiteRequest) -> bytes:
    try:
        return await request.body()
    except HTTPException as err:
        if err.status_code == 413:
            raise PayloadTooLarge(f"a journal batch is at most {MAX_BATCH_BYTES} bytes") from err
        raise


def _journal_head(site_id: int) -> JournalHead:
    row = (
        Site.select(Site.acked_seq, Site.compacted_through)
        .where(Site.id == site_id)
        .tuples()
        .first()
    )
    acked, compacted = row if row else (0, 0)
    return JournalHead(acked_seq=acked, compacted_through=compacted)


def _etag_matches_tag(header: str, etag: str) -> bool:
    return any(
        part.strip().removeprefix("W/").strip('"') in ("*", etag) for part in header.split(",")
    )
