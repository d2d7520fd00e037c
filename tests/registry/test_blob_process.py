"""Blobs on a real registry process: the administration CLI (upload with progress,
list, remove, its refusals) and an upload cut part way, which leaves nothing behind."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.support.registry_process import operator_headers, registry_cli, registry_env, serve

BIG = 64 * 1024 * 1024 + 1  # from this size the CLI shows its progress


def test_the_cli_uploads_lists_and_removes_blobs(tmp_path: Path) -> None:
    _, env = registry_env(tmp_path)
    big = tmp_path / "bundle.tar"
    with big.open("wb") as f:
        f.truncate(BIG)  # zeros: the hash is what matters here
    sha = hashlib.sha256(big.read_bytes()).hexdigest()
    stored = registry_cli(env, "blob", "upload", str(big))
    assert stored.returncode == 0, stored.stderr
    assert f"stored: {sha} ({BIG} bytes, bundle.tar)" in stored.stdout
    assert "copied 100%" in stored.stderr
    blob_dir = tmp_path / "registry" / "blobs"
    assert (blob_dir / sha).stat().st_size == BIG
    assert list((blob_dir / ".tmp").iterdir()) == []
    shown = registry_cli(env, "blob", "list")
    assert sha in shown.stdout and "1 blob(s)" in shown.stdout

    missing = registry_cli(env, "blob", "upload", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "not_a_file" in missing.stderr
    bad = registry_cli(env, "blob", "remove", "xyz")
    assert bad.returncode != 0 and "invalid_sha256" in bad.stderr

    removed = registry_cli(env, "blob", "remove", sha)
    assert removed.returncode == 0, removed.stderr
    assert not (blob_dir / sha).exists()
    assert json.loads(registry_cli(env, "blob", "list", "--json").stdout)["blobs"] == []
    again = registry_cli(env, "blob", "remove", sha)
    assert again.returncode != 0 and "blob_not_found" in again.stderr


def test_an_upload_cut_part_way_leaves_no_file_and_no_row(tmp_path: Path) -> None:
    url, env = registry_env(tmp_path)
    sha = "ab" * 32
    with serve(env, url, tmp_path / "registry.log"):
        op = operator_headers(env)
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as s:
            head = (
                f"PUT /api/v1/blobs/{sha} HTTP/1.1\r\nHost: registry\r\n"
                f"Authorization: {op['Authorization']}\r\n"
                f"Content-Length: {8 * 1024 * 1024}\r\n\r\n"
            )
            s.sendall(head.encode())
            s.sendall(b"\0" * (3 * 1024 * 1024))
            tmp_dir = tmp_path / "registry" / "blobs" / ".tmp"
            deadline = time.monotonic() + 10
            while not (tmp_dir.exists() and any(tmp_dir.iterdir())):
                assert time.monotonic() < deadline, "the upload never reached the disk"
                time.sleep(0.05)
        # The connection is gone with 5 MiB unsent: the temporary file goes too.
        deadline = time.monotonic() + 10
        while any(tmp_dir.iterdir()):
            assert time.monotonic() < deadline, list(tmp_dir.iterdir())
            time.sleep(0.05)
        listed = httpx.get(f"{url}/api/v1/blobs", headers=op).json()
        assert listed == {"blobs": [], "total_bytes": 0}
        assert not (tmp_path / "registry" / "blobs" / sha).exists()
