"""A real QEMU stops answering (SIGSTOP) among three VMs under libvirtd.

The daemon's monitor sweeps on, calls that VM unresponsive with since when, keeps the
other VMs' stats fresh, the API answers, the scheduler's jobs never pile up behind
it; after SIGCONT the VM is running again, and the journal says so once each way.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.backends.vm.libvirt_backend import SYSTEM_URI, LibvirtBackend
from tests.integration.test_real_vm import _system_conn, _wait, demo_images, workdir
from tests.support.appliance import REAL_HOST, make_config
from tests.support.daemon import Daemon, running_daemon
from tests.support.stuck_qemu import remove_domains, stopped_qemu

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]
__all__ = ["demo_images", "workdir"]  # fixtures shared with the real VM test

# Emulated QEMU on a loaded test machine may take a second to answer a stats query.
STATS_DEADLINE_S = 2
UNRESPONSIVE_AFTER_S = 5


def _vms(api: httpx.Client) -> dict[str, Any]:
    return {vm["name"]: vm for vm in api.get("/api/v1/vms").json()}


def _current(api: httpx.Client, name: str) -> dict[str, Any]:
    return api.get(f"/api/v1/vms/{name}/stats").json()["current"] or {}


def _fresh_after(api: httpx.Client, names: list[str], t: float) -> Callable[[], bool]:
    return lambda: all(_current(api, n).get("at", 0) > t for n in names)


def _journalled_states(api: httpx.Client, names: list[str]) -> set[str]:
    """The newest state the journal holds of each of ``names`` (none yet: nothing)."""
    params = {"kind": "vm.state", "limit": 1000}
    entries = api.get("/api/v1/journal", params=params).json()["entries"]
    newest = {e["state"]["name"]: e["state"]["state"] for e in entries}
    return {state for name, state in newest.items() if name in names}


@contextmanager
def _node_with_vms(
    demo_images: Path, workdir: Path, names: list[str]
) -> Iterator[tuple[httpx.Client, Daemon]]:
    """A daemon on the system libvirtd with the demo VMs ``names`` running and
    reporting stats; whatever is left of them is removed after."""
    conn = _system_conn()
    cfg = make_config(
        workdir,
        TOWERBOX_LIBVIRT_URI=SYSTEM_URI,
        TOWERBOX_IMAGE_DIR=str(demo_images),
        TOWERBOX_NODE_NAME=f"it-{names[0]}",
        **REAL_HOST,
    )
    env = {
        "TOWERBOX_JOBS_STATS_DEADLINE_S": str(STATS_DEADLINE_S),
        "TOWERBOX_JOBS_UNRESPONSIVE_AFTER_S": str(UNRESPONSIVE_AFTER_S),
    }
    try:
        with running_daemon(cfg, workdir, extra_env=env) as d:
            d.wait_notify("READY=1", timeout=60)
            with d.http(cfg.cli_token_file.read_text().strip()) as api:
                for name in names:
                    made = api.post(
                        "/api/v1/vms", json={"name": name, "appliance": "demo", "start": True}
                    )
                    assert made.status_code == 201, made.text
                _wait(
                    lambda: all(_current(api, n).get("cpu_time_ns", 0) > 0 for n in names),
                    60,
                    "stats of every VM",
                )
                # A domain starts paused (QEMU is resumed once set up), and a sweep may
                # journal that: a test that reads the journal from here on must see only
                # what it caused, so the journal first says each VM is running again.
                _wait(
                    lambda: _journalled_states(api, names) <= {"running"},
                    60,
                    "the journal to say every VM is running",
                )
                yield api, d
    finally:
        remove_domains(conn, names)
        conn.close()


def test_stopped_qemu_is_unresponsive_and_the_node_stays_live(
    demo_images: Path, workdir: Path
) -> None:
    names = [f"stuck-it-{os.getpid()}-{i}" for i in range(3)]
    stuck, others = names[0], names[1:]
    with _node_with_vms(demo_images, workdir, names) as (api, d):
        journal_from = api.get("/api/v1/journal", params={"limit": 1000}).json()
        after = max((e["seq"] for e in journal_from["entries"]), default=0)

        stopped_at = time.time()
        log_from = d.log.stat().st_size
        with stopped_qemu(stuck):
            _wait(
                lambda: _vms(api)[stuck]["state"] == "unresponsive",
                60,
                "the stopped VM to be called unresponsive",
            )
            shown = _vms(api)[stuck]
            since = shown["unresponsive_since"]
            assert stopped_at - 1 <= since <= time.time() - UNRESPONSIVE_AFTER_S
            detail = api.get(f"/api/v1/vms/{stuck}").json()  # asks libvirt live
            assert (detail["state"], detail["unresponsive_since"]) == (
                "unresponsive",
                since,
            )
            assert _current(api, stuck)["state"] == "unresponsive"
            assert all(_vms(api)[n]["state"] == "running" for n in others)

            # Sweeps go on: the other VMs' samples keep coming, the stuck one's
            # too (as unresponsive), and the sweep stays short.
            marked = time.time()
            _wait(_fresh_after(api, names, marked), 30, "fresh samples of every VM")
            cpu = {n: _current(api, n)["cpu_time_ns"] for n in others}
            _wait(
                lambda: all(_current(api, n)["cpu_time_ns"] > cpu[n] for n in others),
                30,
                "the other VMs' CPU time to grow",
            )
            health = api.get("/healthz").json()
            assert health["last_sweep_at"] > marked
            metrics = api.get("/metrics").text
            assert 'towerbox_vms{state="unresponsive"} 1.0' in metrics

            # What the reconciler reads of libvirt answers with QEMU stopped.
            listed = {
                s.name: s.state.value for s in LibvirtBackend(SYSTEM_URI, "qemu").list_domains()
            }
            assert listed[stuck] == "running"
            refused = api.post(f"/api/v1/vms/{stuck}/shutdown", json={})
            assert refused.status_code == 409, refused.text
            assert refused.json()["code"] == "vm_unresponsive"
            time.sleep(4)  # two reconcile runs (every 2 s here) with it stuck
            stuck_log = d.log.read_bytes()[log_from:].decode()
            # A job still running at its next turn is skipped and logged by the
            # scheduler: reconcile never waited on the stuck QEMU.
            assert not re.search(r"reconcile_job.*skipped", stuck_log), stuck_log

        _wait(
            lambda: _vms(api)[stuck]["state"] == "running",
            60,
            "the continued VM to be running again",
        )
        assert _vms(api)[stuck]["unresponsive_since"] is None
        entries = api.get(
            "/api/v1/journal", params={"after": after, "kind": "vm.state", "limit": 1000}
        ).json()["entries"]
        changes = [
            (e["state"]["state"], e["state"].get("unresponsive_since"))
            for e in entries
            if e["state"]["name"] == stuck
        ]
        assert [c[0] for c in changes] == ["unresponsive", "running"]
        assert changes[0][1] is not None and changes[1][1] is None
        others_changed = [e["state"] for e in entries if e["state"]["name"] != stuck]
        assert others_changed == [], others_changed

        for name in names:
            assert api.delete(f"/api/v1/vms/{name}").status_code == 204


def test_stop_forces_an_unresponsive_vm_off(demo_images: Path, workdir: Path) -> None:
    name = f"stuck-stop-{os.getpid()}"
    with _node_with_vms(demo_images, workdir, [name]) as (api, _), stopped_qemu(name):
        _wait(
            lambda: _vms(api)[name]["state"] == "unresponsive",
            60,
            "the stopped VM to be called unresponsive",
        )
        off = api.post(f"/api/v1/vms/{name}/stop")
        assert off.status_code in (200, 201), off.text
        assert (off.json()["state"], off.json()["unresponsive_since"]) == ("shutoff", None)
        assert api.delete(f"/api/v1/vms/{name}").status_code == 204


def test_libvirt_backend_refuses_to_stall_a_real_domain() -> None:
    _system_conn().close()
    backend = LibvirtBackend(SYSTEM_URI, "qemu")
    with pytest.raises(Exception, match="SIGSTOP") as err:
        backend.stall("00000000-0000-0000-0000-000000000000")
    assert getattr(err.value, "code", None) == "stall_unsupported"
