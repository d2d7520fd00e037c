"""The blob relay: how the appliance, which has no WAN, fetches fleet registry blobs.

A unix socket on the node (``relay_socket``, mode 0600; the appliance connects as
root) that answers exactly one request: ``GET /blobs/<sha256>``, with at most a
``Range`` header. The agent asks the registry's ``/api/v1/sync/blobs/<sha256>`` with
the site secret and hands back status, length, range and bytes unchanged, at the pace
the appliance reads them. A transfer cut upstream is cut here too (the connection is
aborted, never ended as if whole), so the appliance resumes it with a Range. Nothing
else of the registry is reachable through it, and the secret never leaves the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
from pathlib import Path

import httpx
import msgspec

from towerbox_core.errors import TowerboxError

log = logging.getLogger(__name__)

_REQUEST_RE = re.compile(r"^(?P<method>[A-Z]+) (?P<target>\S+) HTTP/1\.[01]$")
_BLOB_RE = re.compile(r"^/blobs/(?P<sha>[0-9a-f]{64})$")
_PASSED = ("content-length", "content-range", "accept-ranges", "etag", "content-type")
_HEAD_TIMEOUT_S = 10.0
_MAX_ERROR_BODY = 64 * 1024
UNAVAILABLE = "artifact_origin_unavailable"


class BlobRelay:
    def __init__(self, path: str, registry: httpx.AsyncClient) -> None:
        self.path = Path(path)
        self._registry = registry
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.relayed = 0  # requests answered, for the tests and the log

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()  # left by an agent that did not stop cleanly
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))
        os.chmod(self.path, 0o600)
        log.info("blob relay on %s", self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        await self._registry.aclose()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            writer.transport.abort()
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT_S)
            method, target, headers = _parse_head(head)
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await _problem(writer, 400, "bad_request", "not an HTTP/1.1 request head")
            return
        found = _BLOB_RE.match(target)
        if method != "GET" or found is None:
            await _problem(writer, 404, "not_found", "the relay serves GET /blobs/<sha256> only")
            return
        sha = found.group("sha")
        upstream = {"Accept-Encoding": "identity"}
        if "range" in headers:
            upstream["Range"] = headers["range"]
        try:
            async with self._registry.stream(
                "GET", f"/api/v1/sync/blobs/{sha}", headers=upstream
            ) as resp:
                await self._relay(resp, writer, sha, headers.get("range"))
        except httpx.HTTPError as err:  # before any of the answer went to the appliance
            await _problem(
                writer,
                503,
                UNAVAILABLE,
                f"the fleet registry is unreachable: {type(err).__name__}: {err}",
            )

    async def _relay(
        self,
        resp: httpx.Response,
        writer: asyncio.StreamWriter,
        sha: str,
        asked: str | None,
    ) -> None:
        if resp.status_code >= 400:
            body = (await resp.aread())[:_MAX_ERROR_BODY]
            kind = resp.headers.get("content-type", "application/problem+json")
            extra = {k: resp.headers[k] for k in ("content-range",) if k in resp.headers}
            _write_head(writer, resp.status_code, {"content-type": kind, **extra}, len(body))
            writer.write(body)
            await writer.drain()
            return
        passed = {k: resp.headers[k] for k in _PASSED if k in resp.headers}
        writer.write(_head_bytes(resp.status_code, passed))
        sent = 0
        try:
            async for chunk in resp.aiter_raw():
                writer.write(chunk)
                sent += len(chunk)
                await writer.drain()  # the appliance's pace (its bandwidth cap) sets ours
        except httpx.HTTPError as err:
            # Cut upstream: abort, so the appliance sees a short body and resumes.
            log.warning("blob %s: the registry's transfer broke after %d bytes: %s", sha, sent, err)
            writer.transport.abort()
            return
        self.relayed += 1
        log.info("blob %s relayed: %d bytes (range %s)", sha, sent, asked or "none")


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    m = _REQUEST_RE.match(lines[0])
    if m is None:
        raise ValueError("bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError("bad header")
        headers[name.strip().lower()] = value.strip()
    return m.group("method"), m.group("target"), headers


def _head_bytes(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _write_head(writer: asyncio.StreamWriter, status: int, headers: dict[str, str], n: int) -> None:
    writer.write(_head_bytes(status, {**headers, "content-length": str(n)}))


async def _problem(writer: asyncio.StreamWriter, status: int, code: str, detail: str) -> None:
    error = TowerboxError(detail, code=code)
    error.status = status
    body = msgspec.json.encode(error.to_problem())
    _write_head(writer, status, {"content-type": "application/problem+json"}, len(body))
    writer.write(body)
    await writer.drain()


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
