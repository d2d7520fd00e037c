"""A fleet registry blob fetched by the node's fetcher through the agent's blob relay:
uploaded with `towerbox registry blob upload`, served by a real `towerbox registry
serve`, cut part way and resumed with a Range; refused cleanly, with nothing partial
left, when the blob or the registry is not there."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.backends.artifacts.bandwidth import TokenBucket
from appliance.backends.artifacts.http_fetch import INTERRUPTED, Wanted, fetch
from appliance.backends.artifacts.store import ArtifactStore
from appliance.services.artifact_origin import UNAVAILABLE
from edge_agent.blob_relay import BlobRelay
from tests.integration.sync.wan import DelayProxy
from tests.support.daemon import free_port
from tests.support.registry_process import operator_headers, registry_cli, registry_env, serve
from towerbox_core.client import async_http
from towerbox_core.errors import TowerboxError

# Well beyond what the sockets on the way buffer, so a cut lands part way.
SIZE = 40 * 1024 * 1024 + 5


class RelayThread:
    """The agent's blob relay on its own event loop, in a thread of the test."""

    def __init__(self, path: Path, registry_url: str, secret: str) -> None:
        self.path = path
        self.url = registry_url
        self.secret = secret
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.relay: BlobRelay | None = None

    def __enter__(self) -> RelayThread:
        self.thread.start()

        async def start() -> BlobRelay:
            relay = BlobRelay(str(self.path), async_http(self.url, token=self.secret, timeout=10))
            await relay.start()
            return relay

        self.relay = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.relay is not None:
            asyncio.run_coroutine_threadsafe(self.relay.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class CutOnce:
    """A fetch listener that drops the link once, a third of the way in."""

    def __init__(self, proxy: DelayProxy | None) -> None:
        self.proxy = proxy
        self.done = 0

    def started(self, done: int, total: int | None) -> None:
        self.done = done

    def advanced(self, n: int) -> None:
        self.done += n
        if self.proxy is not None and self.done >= SIZE // 3:
            self.proxy.reset_connections()
            self.proxy = None

    def verifying(self) -> None:
        pass


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data = os.urandom(SIZE)
    blob = tmp_path / "model.bin"
    blob.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    url, env = registry_env(tmp_path)
    # An operator action on the registry's host, before the server runs.
    stored = registry_cli(env, "blob", "upload", str(blob), "--name", "llm-model")
    assert stored.returncode == 0, stored.stderr
    assert sha in stored.stdout and f'"registry:{sha}"' in stored.stdout
    again = registry_cli(env, "blob", "upload", str(blob))
    assert "already stored" in again.stdout
    listed = json.loads(registry_cli(env, "blob", "list", "--json").stdout)
    assert [(b["sha256"], b["name"], b["size"]) for b in listed["blobs"]] == [
        (sha, "llm-model", SIZE)
    ]
    with serve(env, url, tmp_path / "registry.log"):
        op = operator_headers(env)
        made = httpx.post(f"{url}/api/v1/sites", json={"name": "s1"}, headers=op)
        assert made.status_code == 201, made.text
        enrolled = httpx.post(
            f"{url}/api/v1/enroll", json={"token": made.json()["enrollment_token"]}
        )
        assert enrolled.status_code == 200, enrolled.text
        yield {
            "url": url,
            "port": int(url.rsplit(":", 1)[1]),
            "secret": enrolled.json()["secret"],
            "sha": sha,
            "data": data,
        }


def test_a_registry_blob_resumes_through_the_relay_after_a_cut(
    tmp_path: Path, origin: dict[str, Any]
) -> None:
    store = ArtifactStore(tmp_path / "images")
    sock = tmp_path / "blobs.sock"
    with (
        DelayProxy(("127.0.0.1", origin["port"])) as proxy,
        RelayThread(sock, f"http://127.0.0.1:{proxy.port}", origin["secret"]) as relay,
    ):
        assert sock.stat().st_mode & 0o777 == 0o600
        want = Wanted(
            "model.bin",
            f"http://towerbox-agent/blobs/{origin['sha']}",
            origin["sha"],
            None,
            socket=str(sock),
        )
        # 8 MiB/s: the cut lands part way through, not after the last byte.
        bucket = TokenBucket(8 * 1024 * 1024)
        with pytest.raises(TowerboxError) as cut:
            fetch(store, want, bucket, CutOnce(proxy))
        assert cut.value.code == INTERRUPTED
        assert store.present_size("model.bin") is None  # nothing visible after a cut
        kept = store.partial_size("model.bin")
        assert 0 < kept < SIZE
        got = fetch(store, want, bucket, CutOnce(None))
        assert got.resumed_from == kept and got.transferred == SIZE - kept
        assert store.path("model.bin").read_bytes() == origin["data"]
        assert store.partials() == {}
        assert relay.relay is not None and relay.relay.relayed == 1


def test_a_missing_blob_or_registry_leaves_nothing_behind(
    tmp_path: Path, origin: dict[str, Any]
) -> None:
    store = ArtifactStore(tmp_path / "images")
    sock = tmp_path / "blobs.sock"
    absent = "ab" * 32
    want = Wanted("gone.bin", f"http://towerbox-agent/blobs/{absent}", absent, None, str(sock))
    with RelayThread(sock, origin["url"], origin["secret"]):
        with pytest.raises(TowerboxError) as missing:
            fetch(store, want, TokenBucket(0), CutOnce(None))
        assert missing.value.code == "blob_not_found"
    dead = f"http://127.0.0.1:{free_port()}"
    with RelayThread(sock, dead, origin["secret"]):
        with pytest.raises(TowerboxError) as down:
            fetch(store, want, TokenBucket(0), CutOnce(None))
        assert down.value.code == UNAVAILABLE
    with RelayThread(sock, origin["url"], "tbs_revoked"):
        with pytest.raises(TowerboxError) as refused:
            fetch(store, want, TokenBucket(0), CutOnce(None))
        assert refused.value.code == "invalid_site_secret"
    assert store.partials() == {} and store.files() == {} and store.quarantined() == {}


def test_the_relay_answers_blob_reads_and_nothing_else(tmp_path: Path) -> None:
    sock = tmp_path / "blobs.sock"
    with (
        RelayThread(sock, f"http://127.0.0.1:{free_port()}", "tbs_x"),
        httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=10) as client,
    ):
        for method, path in [
            ("GET", "/api/v1/sync/journal/head"),
            ("POST", f"/blobs/{'a' * 64}"),
            ("GET", "/blobs/not-a-hash"),
            ("GET", f"/blobs/{'A' * 64}"),
        ]:
            resp = client.request(method, f"http://towerbox-agent{path}")
            assert (resp.status_code, resp.json()["code"]) == (404, "not_found"), path
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(sock))
            raw.sendall(b"NONSENSE\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400 ")
    assert not sock.exists()  # removed when the relay stops
