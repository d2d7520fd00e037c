"""Artifacts through the appliance's API: list, fetch now with progress, a bad hash,
garbage collection with a keep list, and the off-peak pre-cache window, against a real
local HTTP server."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import io
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from appliance.cli.artifact import follow
from appliance.context import Appliance, build_appliance
from appliance.daemon import first_jobs
from appliance.services import artifact_intents
from appliance.services.artifact_precache import Precache
from appliance.store import journal
from tests.support.appliance import REPO, admin_password, api_client, built, login
from tests.support.artifact_server import LLM_ENTRY, ServerState, artifact_server
from towerbox_core.errors import TowerboxError

SIZE = 2 * 1024 * 1024 + 7
NIGHT = dt.datetime(2026, 11, 30, 1, 30, tzinfo=dt.UTC)  # inside "0 1 * * *" for 60 min
NOON = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@contextmanager
def served_model(tmp_path: Path) -> Iterator[tuple[ServerState, bytes, Path]]:
    """model.bin served from a local HTTP server, and a catalog whose entry llm needs
    it (and broken.bin: the same file under a wrong hash): the server's state, the
    file's bytes and the catalog folder."""
    origin = tmp_path / "origin"
    origin.mkdir()
    data = os.urandom(SIZE)
    (origin / "model.bin").write_bytes(data)
    with artifact_server(origin) as (url, state):
        catalog = tmp_path / "catalog"
        catalog.mkdir()
        sha = hashlib.sha256(data).hexdigest()
        text = LLM_ENTRY.format(url=url, sha=sha, size=SIZE, wrong="0" * 64)
        (catalog / "llm.toml").write_text(text)
        yield state, data, catalog


@pytest.fixture
def node(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Appliance, ServerState, bytes]]:
    with served_model(tmp_path) as (state, data, catalog):
        shutil.copy(REPO / "images" / "catalog" / "demo.toml", catalog)
        shutil.copytree(REPO / "images" / "cloud-init", tmp_path / "cloud-init")
        app = built(
            tmp_path,
            TOWERBOX_CATALOG_DIR=str(catalog),
            TOWERBOX_ARTIFACTS_PRECACHE_CRON="0 1 * * *",
            TOWERBOX_ARTIFACTS_PRECACHE_MINUTES="60",
            **{
                "TOWERBOX_ARTIFACTS_RETRIES": "0",
                "TOWERBOX_ARTIFACTS_CONCURRENCY": "2",
                **getattr(request, "param", {}),  # a test's own settings
            },
        )
        try:
            yield app, state, data
        finally:
            for vm in app.vms.load_records():
                app.vms.delete(_root(app), vm.spec.name)
            app.close()


@pytest.fixture
def api(node: tuple[Appliance, ServerState, bytes]) -> Iterator[tuple[TestClient[Any], Any]]:
    app = node[0]
    with api_client(app) as client:
        yield client, login(client, "admin", admin_password(app.cfg))


def _root(app: Appliance) -> Any:
    from appliance.services.auth import Principal, Role
    from appliance.store.models import User

    admin = User.get(User.username == "admin")
    return Principal(admin.id, "admin", Role.INFRA_ADMIN, None, 0)


def _clock(app: Appliance, start: dt.datetime) -> list[dt.datetime]:
    """The pre-cache's clock, frozen at ``start``; a test moves it by setting [0]."""
    now = [start]
    app.precache.clock = lambda: now[0]
    return now


def _until(check: Callable[[], Any]) -> Any:
    """Poll until ``check`` answers something true (a deadline, not a threshold)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.02)
    raise AssertionError("gave up waiting")


def _fetch_of(client: TestClient[Any], headers: Any, name: str, states: set[str]) -> Any:
    def check() -> Any:
        for f in client.get("/api/v1/artifacts/fetches", headers=headers).json():
            if f["name"] == name and f["state"] in states:
                return f
        return None

    return _until(check)


def _artifact(client: TestClient[Any], headers: Any, name: str) -> Any:
    listing = client.get("/api/v1/artifacts", headers=headers).json()
    return next(a for a in listing["artifacts"] if a["name"] == name)


def test_fetch_now_reports_progress_and_journals_the_outcome_once(
    node: tuple[Appliance, ServerState, bytes], api: tuple[TestClient[Any], Any]
) -> None:
    app, _, data = node
    client, admin = api
    missing = _artifact(client, admin, "model.bin")
    assert missing["state"] == "missing" and missing["needed_by"] == ["llm"]
    assert missing["size"] == SIZE and missing["fetch"] is None
    resp = client.post("/api/v1/artifacts/model.bin/fetch", headers=admin)
    assert resp.status_code == 202, resp.text
    assert resp.json()["name"] == "model.bin" and resp.json()["reason"] == "now"
    done = _fetch_of(client, admin, "model.bin", {"done", "failed"})
    assert done["state"] == "done", done
    assert done["bytes_done"] == done["bytes_total"] == SIZE and done["eta_s"] == 0
    assert done["rate_bps"] > 0
    assert _artifact(client, admin, "model.bin")["state"] == "verified"
    assert (Path(app.cfg.image_dir) / "model.bin").read_bytes() == data
    kinds = [e["kind"] for e in journal.entries(kind_prefix="artifact.")]
    assert kinds == ["artifact.fetched"]
    # A second fetch of a verified file checks it and moves no byte.
    client.post("/api/v1/artifacts/model.bin/fetch", headers=admin)
    again = _fetch_of(client, admin, "model.bin", {"done", "failed"})
    assert again["state"] == "done" and again["resumed_from"] == SIZE


def test_a_bad_hash_fails_the_fetch_and_is_quarantined(
    node: tuple[Appliance, ServerState, bytes], api: tuple[TestClient[Any], Any]
) -> None:
    app, _, data = node
    client, admin = api
    client.post("/api/v1/artifacts/broken.bin/fetch", headers=admin)
    failed = _fetch_of(client, admin, "broken.bin", {"done", "failed"})
    assert failed["state"] == "failed"
    assert failed["error_code"] == "artifact_hash_mismatch"
    assert "0" * 64 in failed["error"] and hashlib.sha256(data).hexdigest() in failed["error"]
    assert _artifact(client, admin, "broken.bin")["state"] == "missing"
    [entry] = journal.entries(kind_prefix="artifact.")
    assert entry["kind"] == "artifact.failed" and entry["state"]["code"] == "artifact_hash_mismatch"
    assert os.listdir(Path(app.cfg.image_dir) / ".quarantine")
    unknown = client.post("/api/v1/artifacts/nothing.bin/fetch", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["code"] == "artifact_not_found"


@pytest.mark.parametrize(
    "node",
    [{"TOWERBOX_ARTIFACTS_RETRIES": "2", "TOWERBOX_ARTIFACTS_RETRY_WAIT_S": "0.05"}],
    indirect=True,
)
def test_cut_transfers_are_resumed_while_they_gain_and_given_up_after_retries_in_a_row(
    node: tuple[Appliance, ServerState, bytes], api: tuple[TestClient[Any], Any]
) -> None:
    app, state, data = node
    client, admin = api
    # Five cuts, each after an eighth of the file: more than the 2 retries, but every
    # one gained bytes, so the fetch goes on and ends verified.
    state.cut_after, state.cut_times = SIZE // 8, 5
    client.post("/api/v1/artifacts/model.bin/fetch", headers=admin)
    done = _fetch_of(client, admin, "model.bin", {"done", "failed"})
    assert done["state"] == "done", done
    assert state.sent == SIZE  # resumed each time: no byte fetched twice
    assert (Path(app.cfg.image_dir) / "model.bin").read_bytes() == data
    ranges = [asked for path, asked, _ in state.requests if path.endswith("/model.bin")]
    assert len(ranges) == 6 and ranges[0] is None and all(ranges[1:]), ranges
    # An origin that sends nothing: the first try and 2 retries in a row, then it fails.
    (Path(app.cfg.image_dir) / "model.bin").unlink()
    state.requests.clear()
    state.cut_after, state.cut_times = 0, 10
    client.post("/api/v1/artifacts/model.bin/fetch", headers=admin)
    failed = _fetch_of(client, admin, "model.bin", {"done", "failed"})
    assert failed["state"] == "failed" and failed["error_code"] == "artifact_fetch_interrupted"
    assert len(state.requests) == 3, state.requests
    # An origin answering 503 while it restarts is tried again, not given up on.
    state.cut_after, state.cut_times, state.unavailable = None, 1, 2
    state.requests.clear()
    client.post("/api/v1/artifacts/model.bin/fetch", headers=admin)
    done = _fetch_of(client, admin, "model.bin", {"done", "failed"})
    assert done["state"] == "done", done
    assert [status for _, _, status in state.requests] == [503, 503, 200], state.requests
    # A server that ignores ranges starts over after each cut: no try takes the file
    # further than the first, so the retries run out instead of going on for ever.
    (Path(app.cfg.image_dir) / "model.bin").unlink()
    state.ignore_range = True
    state.cut_after, state.cut_times = SIZE // 4, 10
    state.requests.clear()
    client.post("/api/v1/artifacts/model.bin/fetch", headers=admin)
    failed = _fetch_of(client, admin, "model.bin", {"done", "failed"})
    assert failed["state"] == "failed" and failed["error_code"] == "artifact_fetch_interrupted"
    # Three tries: the first, then two that each asked for a range, got a 200 and began
    # again from byte 0.
    ranges = [asked for _, asked, _ in state.requests]
    assert ranges == [None, f"bytes={SIZE // 4}-", None, f"bytes={SIZE // 4}-", None], ranges


def test_a_fetch_asked_for_is_resumed_after_a_daemon_restart(tmp_path: Path) -> None:
    with served_model(tmp_path) as (state, data, catalog):
        app = built(tmp_path, TOWERBOX_CATALOG_DIR=str(catalog))
        state.throttle_bps = 512 * 1024  # some four seconds for the file
        with api_client(app) as client:
            admin = login(client, "admin", admin_password(app.cfg))
            assert client.post("/api/v1/artifacts/model.bin/fetch", headers=admin).is_success
            _until(lambda: _fetch_of(client, admin, "model.bin", {"running"})["bytes_done"])
        app.close()  # the daemon stops mid-transfer; the partial file stays
        kept = (Path(app.cfg.image_dir) / ".partial" / "model.bin").stat().st_size
        assert 0 < kept < SIZE
        state.throttle_bps = 0
        again = build_appliance(app.cfg)
        try:
            asyncio.run(first_jobs(again))  # what the daemon runs before it serves
            with api_client(again) as client:
                admin = login(client, "admin", admin_password(again.cfg))
                done = _fetch_of(client, admin, "model.bin", {"done", "failed"})
                assert (done["state"], done["reason"]) == ("done", "resumed"), done
                assert done["resumed_from"] >= kept
                assert _artifact(client, admin, "model.bin")["state"] == "verified"
            assert (Path(again.cfg.image_dir) / "model.bin").read_bytes() == data
            assert artifact_intents.asked() == []  # crossed out with the outcome
        finally:
            again.close()
        # The next start has nothing left to resume, and still knows the file verified.
        third = build_appliance(app.cfg)
        try:
            asyncio.run(first_jobs(third))
            assert third.artifacts.fetches() == []
            views = {a.name: a.state for a in third.artifacts.artifacts().artifacts}
            assert views["model.bin"] == "verified"
        finally:
            third.close()


def test_gc_keeps_what_the_catalog_vms_and_keep_list_need(
    node: tuple[Appliance, ServerState, bytes], api: tuple[TestClient[Any], Any]
) -> None:
    app, _, _ = node
    client, admin = api
    images = Path(app.cfg.image_dir)
    shutil.copy(images / "base.qcow2", images / "vm-only.qcow2")
    (images / "old-1.img").write_bytes(b"x" * 10)
    (images / "old-2.img").write_bytes(b"y" * 20)
    (images / ".partial").mkdir()
    (images / ".partial" / "gone.bin").write_bytes(b"z" * 5)
    vm = {
        "name": "keeper",
        "spec": {"vcpus": 1, "memory_mib": 128, "disks": [{"image": "vm-only.qcow2"}]},
    }
    assert client.post("/api/v1/vms", headers=admin, json=vm).status_code == 201
    body = {"dry_run": True, "keep": ["old-1.*"]}
    dry = client.post("/api/v1/artifacts/gc", headers=admin, json=body).json()
    assert [(i["path"], i["why"]) for i in dry["removed"]] == [
        ("old-2.img", "unused"),
        (".partial/gone.bin", "stale partial"),
    ]
    assert dry["kept"] == ["old-1.img"] and dry["freed_bytes"] == 25
    assert (images / "old-2.img").exists()
    done = client.post("/api/v1/artifacts/gc", headers=admin, json={"keep": ["old-1.*"]}).json()
    assert done["freed_bytes"] == 25 and not done["dry_run"]
    left = sorted(p.name for p in images.iterdir() if p.is_file())
    assert left == [
        "base.qcow2",
        "demo-initramfs.cpio.gz",
        "demo-model.img",
        "demo-vmlinuz",
        "old-1.img",
        "vm-only.qcow2",
    ]
    removed = [e["object_id"] for e in journal.entries(kind_prefix="artifact.removed")]
    assert removed == ["old-2.img", ".partial/gone.bin"]


def test_precache_fetches_only_inside_its_window_and_pauses_when_it_closes(
    node: tuple[Appliance, ServerState, bytes], api: tuple[TestClient[Any], Any]
) -> None:
    app, state, data = node
    client, admin = api
    now = _clock(app, NOON)
    plan = client.get("/api/v1/artifacts/plan", headers=admin).json()
    assert plan["window_cron"] == "0 1 * * *" and not plan["in_window"]
    assert plan["next_start"] == "2026-12-01T01:00:00+00:00"
    assert plan["next_end"] == "2026-12-01T02:00:00+00:00"
    assert [i["name"] for i in plan["items"]] == ["broken.bin", "model.bin"]
    assert app.precache.tick() == []  # outside the window: nothing starts
    assert state.requests == []
    state.throttle_bps = 1024 * 1024
    now[0] = NIGHT
    assert client.get("/api/v1/artifacts/plan", headers=admin).json()["in_window"]
    assert sorted(app.precache.tick()) == ["broken.bin", "model.bin"]
    running = _fetch_of(client, admin, "model.bin", {"running"})
    assert running["bytes_total"] == SIZE
    _until(lambda: app.artifacts.store.partial_size("model.bin") > 0)
    moving = _until(
        lambda: next(
            f
            for f in client.get("/api/v1/artifacts/fetches", headers=admin).json()
            if f["name"] == "model.bin" and (f["eta_s"] is not None or f["state"] != "running")
        )
    )
    assert moving["state"] == "running" and moving["rate_bps"] > 0 and moving["eta_s"] > 0
    assert app.precache.tick() == []  # both under way
    now[0] = NOON  # the window closes mid-transfer
    paused = _fetch_of(client, admin, "model.bin", {"paused", "done", "failed"})
    assert paused["state"] == "paused" and paused["reason"] == "precache"
    kept = app.artifacts.store.partial_size("model.bin")
    assert 0 < kept < SIZE
    assert app.precache.tick() == []
    assert app.artifacts.store.partial_size("model.bin") == kept
    assert _artifact(client, admin, "model.bin")["state"] == "missing"
    state.throttle_bps = 0
    now[0] = NIGHT + dt.timedelta(days=1)  # the next window resumes it
    assert "model.bin" in app.precache.tick()
    done = _fetch_of(client, admin, "model.bin", {"done", "failed"})
    assert done["state"] == "done" and done["resumed_from"] == kept
    assert (Path(app.cfg.image_dir) / "model.bin").read_bytes() == data
    assert [i.name for i in app.precache.plan().items] == ["broken.bin"]


def test_a_fetch_asked_for_now_during_a_precache_outlasts_its_window(
    node: tuple[Appliance, ServerState, bytes], api: tuple[TestClient[Any], Any]
) -> None:
    app, state, data = node
    client, admin = api
    now = _clock(app, NIGHT)
    state.throttle_bps = 1024 * 1024  # two seconds for the file
    assert "model.bin" in app.precache.tick()
    _until(lambda: app.artifacts.store.partial_size("model.bin") > 0)
    joined = client.post("/api/v1/artifacts/model.bin/fetch", headers=admin)
    assert joined.status_code == 202 and joined.json()["reason"] == "precache"
    now[0] = NOON  # the window closes: the operator's "now" keeps this one going
    done = _fetch_of(client, admin, "model.bin", {"paused", "done", "failed"})
    assert done["state"] == "done", done
    assert (Path(app.cfg.image_dir) / "model.bin").read_bytes() == data


def test_a_precache_failure_waits_for_the_next_window_and_a_wrong_file_is_held_back(
    node: tuple[Appliance, ServerState, bytes], api: tuple[TestClient[Any], Any]
) -> None:
    app, state, data = node
    client, admin = api
    now = _clock(app, NIGHT)
    good_url = _artifact_ref(app, "model.bin").url
    _set_artifact(app, "model.bin", url=f"{good_url}.gone")  # its origin fails tonight
    assert sorted(app.precache.tick()) == ["broken.bin", "model.bin"]
    assert _fetch_of(client, admin, "model.bin", {"done", "failed"})["state"] == "failed"
    broken = _fetch_of(client, admin, "broken.bin", {"done", "failed"})
    assert (broken["state"], broken["error_code"]) == ("failed", "artifact_hash_mismatch")
    assert app.precache.tick() == []  # neither is fetched again at every tick
    plan = client.get("/api/v1/artifacts/plan", headers=admin).json()
    held = {i["name"]: i["held"] for i in plan["items"]}
    assert held["model.bin"] == "" and "another sha256" in held["broken.bin"]
    assert plan["total_bytes"] == SIZE  # model.bin only: broken.bin will not be fetched
    # A restart keeps the hold: the pre-cache of a new daemon reads it back.
    restarted = Precache(app.artifacts, clock=lambda: now[0])
    assert [i.name for i in restarted.missing() if i.held] == ["broken.bin"]

    now[0] = NIGHT + dt.timedelta(days=1)
    _set_artifact(app, "model.bin", url=good_url)
    served = state.sent
    # The failed origin is tried again; the wrong file is not downloaded every night.
    assert app.precache.tick() == ["model.bin"]
    assert _fetch_of(client, admin, "model.bin", {"done", "failed"})["state"] == "done"
    assert state.sent - served == SIZE

    # A catalog that corrects the sha256 releases it.
    _set_artifact(app, "broken.bin", sha256=hashlib.sha256(data).hexdigest())
    assert client.get("/api/v1/artifacts/plan", headers=admin).json()["items"][0]["held"] == ""
    assert app.precache.tick() == ["broken.bin"]
    assert _fetch_of(client, admin, "broken.bin", {"done", "failed"})["state"] == "done"
    app.precache.missing()  # notes the artifact is here: nothing held any more
    assert Precache(app.artifacts, clock=lambda: now[0])._held == {}


def _artifact_ref(app: Appliance, name: str) -> Any:
    return next(a for a in app.catalog["llm"].artifacts if a.name == name)


def _set_artifact(app: Appliance, name: str, **fields: str) -> None:
    """What a catalog document changing one artifact of the llm entry does."""
    entry = app.catalog["llm"]
    refs = tuple(
        msgspec.structs.replace(a, **fields) if a.name == name else a for a in entry.artifacts
    )
    app.catalog["llm"] = msgspec.structs.replace(entry, artifacts=refs)


@pytest.mark.parametrize("node", [{"TOWERBOX_ARTIFACTS_CONCURRENCY": "1"}], indirect=True)
def test_the_concurrency_limit_queues_the_second_fetch(
    node: tuple[Appliance, ServerState, bytes], api: tuple[TestClient[Any], Any]
) -> None:
    _, state, _ = node
    client, admin = api
    state.throttle_bps = 512 * 1024
    client.post("/api/v1/artifacts/model.bin/fetch", headers=admin)
    _fetch_of(client, admin, "model.bin", {"running"})
    second = client.post("/api/v1/artifacts/broken.bin/fetch", headers=admin).json()
    assert second["state"] == "queued"
    assert _artifact(client, admin, "broken.bin")["state"] == "fetching"
    assert _fetch_of(client, admin, "broken.bin", {"queued"})
    state.throttle_bps = 0
    assert _fetch_of(client, admin, "model.bin", {"done", "failed"})["state"] == "done"
    assert _fetch_of(client, admin, "broken.bin", {"done", "failed"})["state"] == "failed"


class _Through:
    """The CLI's client shape over the test client: one call, its decoded answer."""

    def __init__(self, client: TestClient[Any], headers: Any) -> None:
        self.client, self.headers = client, headers

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.client.request(method, path, headers=self.headers, **kwargs)
        assert resp.status_code < 400, resp.text
        return resp.json()


def test_the_cli_follows_a_fetch_and_prints_list_gc_and_plan(
    api: tuple[TestClient[Any], Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from appliance.cli.artifact import _call, _rate_and_left, _register, show

    client, admin = api
    parser = argparse.ArgumentParser()
    _register(parser)
    through = _Through(client, admin)
    seen: list[str] = []
    fetch_args = parser.parse_args(["fetch", "model.bin"])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # the progress bar path
    result = _call(fetch_args, through)
    bar = capsys.readouterr().err
    assert "model.bin (done)" in bar and "2.0/2.0 MiB" in bar  # MiB, as `list` says
    running = {"state": "running", "rate_bps": 40 * 1024 * 1024, "eta_s": 3725.4}
    assert _rate_and_left(running) == ("40.0 MiB/s", "1:02:05 left")
    assert _rate_and_left({**running, "eta_s": 65}) == ("40.0 MiB/s", "1:05 left")
    assert _rate_and_left({**running, "state": "verifying"}) == ("", "")
    assert result["state"] == "done" and result["bytes_done"] == SIZE
    assert follow(through, "model.bin", lambda f: seen.append(f["state"]))["state"] == "done"
    assert seen == ["done"]
    show(fetch_args, result)
    for words in (["list"], ["gc", "--dry-run", "--keep", "base*"], ["plan"]):
        args = parser.parse_args(words)
        show(args, _call(args, through))
    printed = capsys.readouterr().out
    assert "model.bin: done" in printed
    assert re.search(r"model\.bin +model +verified", printed)
    assert "would remove 0.0 MiB in all" in printed
    assert "window 0 1 * * *" in printed and "broken.bin" in printed


def test_the_cli_shows_fetches_under_way_as_bars_and_gc_as_a_bar(
    node: tuple[Appliance, ServerState, bytes],
    api: tuple[TestClient[Any], Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from appliance.cli.artifact import _call, _register, show

    app, state, _ = node
    client, admin = api
    parser = argparse.ArgumentParser()
    _register(parser)
    through = _Through(client, admin)
    state.throttle_bps = 1024 * 1024  # two seconds for the file
    assert client.post("/api/v1/artifacts/model.bin/fetch", headers=admin).status_code == 202
    _until(lambda: _fetch_of(client, admin, "model.bin", {"running"})["bytes_done"] > 0)
    listing = parser.parse_args(["list"])
    show(listing, _call(listing, through))
    row = next(line for line in capsys.readouterr().out.splitlines() if "model.bin" in line)
    assert re.search(r"\[#*\.+\] running, \d+% of 2\.0 MiB", row), row

    # --follow on a terminal: live bars until the fetch ends, then the table.
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    following = parser.parse_args(["list", "--follow"])
    show(following, _call(following, through))
    captured = capsys.readouterr()
    assert "model.bin (done)" in captured.err and "2.0/2.0 MiB" in captured.err
    assert re.search(r"model\.bin +model +verified .* done, 100% of 2\.0 MiB", captured.out)

    # gc on a terminal: the plan's files one by one under a bar over their bytes.
    for junk, size in (("old-a.img", 3 << 20), ("old-b.img", 1 << 20)):
        (Path(app.cfg.image_dir) / junk).write_bytes(b"\0" * size)
    gc = parser.parse_args(["gc", "--yes"])
    result = _call(gc, through)
    assert [i["path"] for i in result["removed"]] == ["old-a.img", "old-b.img"]
    assert result["freed_bytes"] == 4 << 20
    assert "4.0/4.0 MiB" in capsys.readouterr().err
    assert not (Path(app.cfg.image_dir) / "old-a.img").exists()
    assert (Path(app.cfg.image_dir) / "model.bin").exists()  # the catalog needs it
    removed = [e for e in journal.entries(limit=1000) if e["kind"] == "artifact.removed"]
    assert len(removed) == 2
    # Asked on a terminal, gc names each file it would remove; a "no" removes nothing.
    (Path(app.cfg.image_dir) / "old-c.img").write_bytes(b"\0" * (2 << 20))
    answer = io.StringIO("n\n")
    monkeypatch.setattr(answer, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys, "stdin", answer)
    asked = parser.parse_args(["gc"])
    with pytest.raises(TowerboxError) as declined:
        _call(asked, through)
    assert declined.value.code == "not_confirmed"
    question = capsys.readouterr().err
    assert "  old-c.img (2.0 MiB, unused)\n" in question
    assert "remove these 1 file (2.0 MiB)? [y/N]" in question
    assert (Path(app.cfg.image_dir) / "old-c.img").exists()
    # Off a terminal, what the plan listed is removed, no more; then nothing is left.
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    scripted = _call(parser.parse_args(["gc", "--yes", "--json"]), through)
    assert [i["path"] for i in scripted["removed"]] == ["old-c.img"]
    assert not scripted["dry_run"]
    empty = _call(parser.parse_args(["gc", "--yes"]), through)
    assert (empty["dry_run"], empty["removed"]) == (False, [])
