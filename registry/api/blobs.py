"""Blob routes: operators upload, list and remove; enrolled agents read by hash.

``PUT /api/v1/blobs/{sha256}`` streams the body to a temporary file, 1 MiB at a time
in a worker thread (never the whole file in memory, never a disk write on the event
loop), and publishes it only when its hash is the one in the path.
``GET /api/v1/sync/blobs/{sha256}`` takes the site secret and honours one HTTP
Range, so a node's cut download resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO

import anyio.to_thread
from litestar import Controller, Response, delete, get, put
from litestar.params import FromPath, FromQuery
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from registry.api.auth import OperatorRequest, SiteRequest
from registry.api.deps import RegistryDep
from registry.services.blobs import (
    BlobTooLarge,
    BlobWriter,
    RangeNotSatisfiable,
    byte_range,
    check_blob_name,
    check_sha256,
)
from towerbox_core.api.blobs import BlobInfo, BlobList

_WRITE_BYTES = 1 << 20
_READ_BYTES = 1 << 20


class BlobController(Controller):
    path = "/api/v1"
    tags = ("blobs",)

    @get("/blobs")
    async def list_blobs(self, request: OperatorRequest, registry: RegistryDep) -> BlobList:
        return await registry.run_db(registry.blobs.list)

    @get("/blobs/{sha256:str}")
    async def blob(
        self, request: OperatorRequest, sha256: FromPath[str], registry: RegistryDep
    ) -> BlobInfo:
        """One blob's record: an uploader looks here before sending a large file."""
        return await registry.run_db(registry.blobs.get, sha256)

    @put("/blobs/{sha256:str}", request_max_body_size=None, status_code=HTTP_201_CREATED)
    async def upload(
        self,
        request: OperatorRequest,
        sha256: FromPath[str],
        registry: RegistryDep,
        name: FromQuery[str] = "",
    ) -> Response[BlobInfo]:
        """Store the body as the blob ``sha256`` (201); 200 when it is already there."""
        request.user.require_write()
        sha = check_sha256(sha256)
        name = check_blob_name(name)
        blobs = registry.blobs
        existing = await registry.run_db(blobs.find, sha)
        if existing is not None:
            async for _ in request.stream():
                pass  # read to the end, so the client sees the answer and not a reset
            return Response(existing, status_code=HTTP_200_OK)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > blobs.max_bytes:
            raise BlobTooLarge(
                f"{length} bytes; a blob is at most {blobs.max_bytes}", max_bytes=blobs.max_bytes
            )
        writer = await anyio.to_thread.run_sync(blobs.begin, sha)
        try:
            await _receive(request, writer)
        except BaseException:
            writer.discard()
            raise
        info = await registry.run_db(blobs.record, sha, writer.size, name, request.user.username)
        return Response(info, status_code=HTTP_201_CREATED)

    @delete("/blobs/{sha256:str}")
    async def remove(
        self, request: OperatorRequest, sha256: FromPath[str], registry: RegistryDep
    ) -> None:
        request.user.require_write()
        await registry.run_db(registry.blobs.remove, sha256)

    @get("/sync/blobs/{sha256:str}", media_type="application/octet-stream")
    async def read(
        self, request: SiteRequest, sha256: FromPath[str], registry: RegistryDep
    ) -> Stream:
        """The blob's bytes for an enrolled agent: whole (200) or one range (206)."""
        info = await registry.run_db(registry.blobs.get, sha256)
        path = registry.blobs.path(info.sha256)
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{info.sha256}"'}
        try:
            wanted = byte_range(request.headers.get("range"), info.size)
        except RangeNotSatisfiable:
            headers["Content-Range"] = f"bytes */{info.size}"
            return Stream(iter(()), status_code=416, headers={**headers, "Content-Length": "0"})
        first, last = wanted if wanted is not None else (0, info.size - 1)
        count = last - first + 1
        try:
            f: BinaryIO = await anyio.to_thread.run_sync(path.open, "rb")
        except FileNotFoundError:  # removed since its row was read
            return Stream(iter(()), status_code=404, headers={"Content-Length": "0"})
        headers["Content-Length"] = str(count)
        status = HTTP_200_OK
        if wanted is not None:
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{info.size}"
        return Stream(_chunks(f, first, count), status_code=status, headers=headers)


async def _receive(request: OperatorRequest, writer: BlobWriter) -> None:
    """Body to file: chunks gathered to 1 MiB, each written and hashed off the loop."""
    pending = bytearray()
    async for chunk in request.stream():
        pending += chunk
        if len(pending) >= _WRITE_BYTES:
            data = bytes(pending)
            pending.clear()
            await anyio.to_thread.run_sync(writer.write, data)
    if pending:
        await anyio.to_thread.run_sync(writer.write, bytes(pending))
    await anyio.to_thread.run_sync(writer.finish)


async def _chunks(f: BinaryIO, offset: int, count: int) -> AsyncIterator[bytes]:
    try:
        await anyio.to_thread.run_sync(f.seek, offset)
        left = count
        while left > 0:
            data = await anyio.to_thread.run_sync(f.read, min(_READ_BYTES, left))
            if not data:
                return  # shorter than its row says: the client sees a short body
            left -= len(data)
            yield data
    finally:
        f.close()
