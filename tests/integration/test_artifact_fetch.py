"""Fetching one artifact from a real local HTTP server into the store: whole, cut and
resumed, from a server that ignores ranges, with a bad hash, without room, paused,
over verified TLS, through redirects, through the site's proxy, with credentials."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.backends.artifacts.bandwidth import TokenBucket
from appliance.backends.artifacts.http_fetch import (
    HASH_MISMATCH,
    INTERRUPTED,
    FetchPaused,
    Wanted,
    fetch,
)
from appliance.backends.artifacts.store import ArtifactStore
from tests.support.artifact_server import ServerState, artifact_server
from tests.support.http_proxy import http_proxy
from tests.support.tls import self_signed
from towerbox_core.errors import TowerboxError

SIZE = 3 * 1024 * 1024 + 123


class Recorder:
    def __init__(self) -> None:
        self.done = 0
        self.total: int | None = None
        self.verified = False

    def started(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total

    def advanced(self, n: int) -> None:
        self.done += n

    def verifying(self) -> None:
        self.verified = True


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ServerState, bytes]]:
    origin = tmp_path / "origin"
    origin.mkdir()
    data = os.urandom(SIZE)
    (origin / "model.bin").write_bytes(data)
    with artifact_server(origin) as (url, state):
        yield url, state, data


def _want(url: str, data: bytes, *, size: int | None = SIZE, sha: str | None = None) -> Wanted:
    return Wanted("model.bin", f"{url}/model.bin", sha or hashlib.sha256(data).hexdigest(), size)


def _visible(store: ArtifactStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir())


def test_a_fetch_appears_only_verified_and_whole(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, _, data = served
    store = ArtifactStore(tmp_path / "images")
    rec = Recorder()
    got = fetch(store, _want(url, data, size=None), TokenBucket(0), rec)
    assert got.transferred == SIZE and got.resumed_from == 0
    assert store.path("model.bin").read_bytes() == data
    assert rec.verified and rec.done == SIZE and rec.total == SIZE
    assert store.partials() == {}
    assert _visible(store) == [".partial", "model.bin"]


def test_a_cut_transfer_resumes_where_it_stopped(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, state, data = served
    store = ArtifactStore(tmp_path / "images")
    state.cut_after = SIZE // 2
    with pytest.raises(TowerboxError) as cut:
        fetch(store, _want(url, data), TokenBucket(0), Recorder())
    assert cut.value.code == INTERRUPTED
    assert store.present_size("model.bin") is None  # nothing visible after a cut
    kept = store.partial_size("model.bin")
    assert 0 < kept <= SIZE // 2
    rec = Recorder()
    got = fetch(store, _want(url, data), TokenBucket(0), rec)
    assert got.resumed_from == kept and got.transferred == SIZE - kept
    assert state.requests[-1][1] == f"bytes={kept}-" and state.requests[-1][2] == 206
    assert state.sent == SIZE  # no byte came twice
    assert store.path("model.bin").read_bytes() == data


def test_a_server_that_ignores_ranges_means_starting_over(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, state, data = served
    store = ArtifactStore(tmp_path / "images")
    state.cut_after = SIZE // 3
    with pytest.raises(TowerboxError):
        fetch(store, _want(url, data), TokenBucket(0), Recorder())
    state.ignore_range = True
    got = fetch(store, _want(url, data), TokenBucket(0), Recorder())
    assert got.resumed_from == 0 and got.transferred == SIZE
    assert store.path("model.bin").read_bytes() == data


def test_a_bad_hash_is_quarantined_and_says_expected_and_got(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, _, data = served
    store = ArtifactStore(tmp_path / "images")
    wrong = "0" * 64
    with pytest.raises(TowerboxError) as bad:
        fetch(store, _want(url, data, sha=wrong), TokenBucket(0), Recorder())
    err = bad.value
    actual = hashlib.sha256(data).hexdigest()
    assert err.code == HASH_MISMATCH
    assert err.extra["expected"] == wrong and err.extra["got"] == actual
    assert wrong in err.message and actual in err.message
    assert store.present_size("model.bin") is None and store.partials() == {}
    [quarantined] = store.quarantined()
    assert quarantined.startswith("model.bin.")


def test_no_room_is_refused_before_a_byte_moves(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, state, data = served
    store = ArtifactStore(tmp_path / "images")
    huge = 2 * store.free_bytes() + (1 << 30)
    with pytest.raises(TowerboxError) as full:
        fetch(store, _want(url, data, size=huge), TokenBucket(0), Recorder())
    assert full.value.code == "insufficient_space"
    assert full.value.extra["needed_bytes"] == huge
    assert full.value.extra["free_bytes"] < huge
    assert state.requests == [] and state.sent == 0


def test_a_stop_keeps_the_partial_file_for_the_next_run(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, state, data = served
    store = ArtifactStore(tmp_path / "images")
    state.throttle_bps = 4 * 1024 * 1024
    rec = Recorder()
    with pytest.raises(FetchPaused):
        fetch(store, _want(url, data), TokenBucket(0), rec, should_stop=lambda: rec.done > 0)
    kept = store.partial_size("model.bin")
    assert kept == rec.done > 0
    state.throttle_bps = 0
    got = fetch(store, _want(url, data), TokenBucket(0), Recorder())
    assert got.resumed_from == kept
    assert store.path("model.bin").read_bytes() == data


def test_a_capped_fetch_still_arrives_whole(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, _, data = served
    store = ArtifactStore(tmp_path / "images")
    got = fetch(store, _want(url, data), TokenBucket(32 * 1024 * 1024), Recorder())
    assert got.transferred == SIZE
    assert store.path("model.bin").read_bytes() == data


@pytest.mark.root
def test_a_disk_that_fills_mid_transfer_leaves_nothing_partial(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, state, data = served
    images = tmp_path / "small"
    images.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(images)], check=True)
    try:
        store = ArtifactStore(images)
        # The catalog gives no size: with the server's length the guard refuses at once.
        want = Wanted("model.bin", f"{url}/model.bin", hashlib.sha256(data).hexdigest(), None)
        with pytest.raises(TowerboxError) as refused:
            fetch(store, want, TokenBucket(0), Recorder())
        assert refused.value.code == "insufficient_space"
        assert refused.value.extra["free_bytes"] < SIZE
        assert store.files() == {} and store.partials() == {}
        # Without a length nothing can tell: the disk fills part way, nothing stays.
        state.hide_length = True
        with pytest.raises(TowerboxError) as full:
            fetch(store, want, TokenBucket(0), Recorder())
        assert full.value.code == "insufficient_space"
        assert state.sent > 0
        assert store.files() == {} and store.partials() == {}
    finally:
        subprocess.run(["umount", str(images)], check=True)


def _tls_origin(tmp_path: Path) -> tuple[Path, bytes, ssl.SSLContext, Path]:
    """A folder holding model.bin, and a server context with a self-signed cert."""
    origin = tmp_path / "origin"
    origin.mkdir()
    data = os.urandom(SIZE)
    (origin / "model.bin").write_bytes(data)
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    return origin, data, tls, cert


def test_an_https_source_is_verified_against_the_trusted_cas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, data, tls, cert = _tls_origin(tmp_path)
    store = ArtifactStore(tmp_path / "images")
    with artifact_server(origin, tls) as (url, state):
        assert url.startswith("https://")
        # The system's CAs do not know this certificate: refused, nothing kept.
        with pytest.raises(TowerboxError) as untrusted:
            fetch(store, _want(url, data), TokenBucket(0), Recorder())
        assert untrusted.value.code == INTERRUPTED
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.value.message
        assert store.files() == {} and store.partials() == {} and state.sent == 0
        # Trusted (as an operator does with SSL_CERT_FILE): fetched and verified.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        state.cut_after = SIZE // 2
        with pytest.raises(TowerboxError):
            fetch(store, _want(url, data), TokenBucket(0), Recorder())
        got = fetch(store, _want(url, data), TokenBucket(0), Recorder())
        assert 0 < got.resumed_from <= SIZE // 2
        assert store.path("model.bin").read_bytes() == data


def test_redirects_are_followed_and_a_loop_is_refused(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, state, data = served
    store = ArtifactStore(tmp_path / "images")
    state.redirects["/moved.bin"] = f"{url}/model.bin"
    moved = Wanted("model.bin", f"{url}/moved.bin", hashlib.sha256(data).hexdigest(), SIZE)
    got = fetch(store, moved, TokenBucket(0), Recorder())
    assert got.transferred == SIZE
    assert store.path("model.bin").read_bytes() == data
    assert [r[0] for r in state.requests] == ["/moved.bin", "/model.bin"]

    state.redirects.update({"/a.bin": "/b.bin", "/b.bin": "/a.bin"})
    looping = Wanted("loop.bin", f"{url}/a.bin", hashlib.sha256(data).hexdigest(), SIZE)
    with pytest.raises(TowerboxError) as loop:
        fetch(store, looping, TokenBucket(0), Recorder())
    assert loop.value.code == INTERRUPTED
    assert "more than 10 redirects" in loop.value.message
    assert store.present_size("loop.bin") is None and store.partial_size("loop.bin") == 0


def test_an_unreachable_source_says_why_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    store = ArtifactStore(tmp_path / "images")
    with socket.socket() as closed:  # a port nothing listens on once it is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    sha = "0" * 64
    with pytest.raises(TowerboxError) as refused:
        fetch(
            store,
            Wanted("a.bin", f"http://127.0.0.1:{port}/a.bin", sha, 10),
            TokenBucket(0),
            Recorder(),
        )
    assert refused.value.code == INTERRUPTED
    assert "connection refused: nothing listens at that address and port" in refused.value.message

    unknown = Wanted("b.bin", "http://towerbox-no-such-host.invalid/b.bin", sha, 10)
    with pytest.raises(TowerboxError) as unresolved:
        fetch(store, unknown, TokenBucket(0), Recorder())
    assert unresolved.value.code == INTERRUPTED
    assert "transfer from towerbox-no-such-host.invalid failed" in unresolved.value.message
    assert "the host name does not resolve" in unresolved.value.message
    assert store.partials() == {} and _visible(store) == []


def test_what_arrived_before_a_stalled_link_timed_out_is_kept(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, state, data = served
    store = ArtifactStore(tmp_path / "images")
    state.cut_after, state.stall_s = SIZE // 2, 3.0
    with pytest.raises(TowerboxError) as stalled:
        fetch(store, _want(url, data), TokenBucket(0), Recorder(), timeout_s=1.0)
    assert stalled.value.code == INTERRUPTED and "timed out" in stalled.value.message
    assert store.partial_size("model.bin") == SIZE // 2  # every byte that came, kept
    got = fetch(store, _want(url, data), TokenBucket(0), Recorder())
    assert got.resumed_from == SIZE // 2 and state.sent == SIZE
    assert store.path("model.bin").read_bytes() == data


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_the_sites_proxy_carries_http_and_tunnels_https(
    tmp_path: Path, no_proxy_env: pytest.MonkeyPatch
) -> None:
    origin, data, tls, cert = _tls_origin(tmp_path)
    no_proxy_env.setenv("SSL_CERT_FILE", str(cert))
    with (
        http_proxy() as (proxy, seen),
        artifact_server(origin) as (plain, _),
        artifact_server(origin, tls) as (secure, _),
    ):
        seen.credentials = "site:s3cret"
        proxy_with_login = proxy.replace("http://", "http://site:s3cret@")
        no_proxy_env.setenv("http_proxy", proxy_with_login)
        no_proxy_env.setenv("https_proxy", proxy_with_login)
        store = ArtifactStore(tmp_path / "images")
        fetch(store, _want(plain, data), TokenBucket(0), Recorder())
        assert store.path("model.bin").read_bytes() == data
        store.path("model.bin").unlink()
        fetch(store, _want(secure, data), TokenBucket(0), Recorder())
        assert store.path("model.bin").read_bytes() == data
        assert seen.seen == [
            ("GET", f"{plain}/model.bin"),
            ("CONNECT", secure.removeprefix("https://")),
        ]
        # Refused credentials: the proxy's answer, and nothing kept.
        store.path("model.bin").unlink()
        no_proxy_env.setenv("http_proxy", proxy.replace("http://", "http://site:wrong@"))
        with pytest.raises(TowerboxError) as refused:
            fetch(store, _want(plain, data), TokenBucket(0), Recorder())
        assert refused.value.extra["http_status"] == 407
        assert store.files() == {} and store.partials() == {}
        # no_proxy: straight to the origin.
        no_proxy_env.setenv("no_proxy", "127.0.0.1")
        fetch(store, _want(plain, data), TokenBucket(0), Recorder())
        assert len(seen.seen) == 3


def test_credentials_in_the_url_are_sent_and_a_unicode_name_is_encoded(
    tmp_path: Path, served: tuple[str, ServerState, bytes]
) -> None:
    url, state, data = served
    (state.root / "modèle 1.bin").write_bytes(data)
    store = ArtifactStore(tmp_path / "images")
    state.credentials = "tenant:t0ken"
    with pytest.raises(TowerboxError) as anonymous:
        fetch(store, _want(url, data), TokenBucket(0), Recorder())
    assert anonymous.value.extra["http_status"] == 401
    login = url.replace("http://", "http://tenant:t0ken@")
    sha = hashlib.sha256(data).hexdigest()
    fetch(store, Wanted("m.bin", f"{login}/modèle 1.bin", sha, SIZE), TokenBucket(0), Recorder())
    assert store.path("m.bin").read_bytes() == data
    assert state.requests[-1][0] == "/mod%C3%A8le%201.bin"
