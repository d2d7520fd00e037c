"""``towerbox tenant show|set-quota|grant|revoke`` and ``towerbox user create --tenant``
as commands against a real daemon process: the exit status, what a person reads, the
``--json`` answer, and what the node holds afterwards.

The commands run in this process through ``towerbox_cli.main`` (as ``test_cli_top``
does); the refusal also runs as the installed ``towerbox`` script, for the one line on
stderr a script sees."""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.appliance import make_config
from tests.support.cli_in_process import declared_groups, run_cli
from tests.support.daemon import TOWERBOX, Daemon, running_daemon
from towerbox_core.commands import EXIT_OK, EXIT_REFUSED, EXIT_USAGE

PASSWORD = "long-enough-password"
# (status, stdout, stderr) of one command line, with an optional token and stdin.
Towerbox = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("tenant-cli")
    with running_daemon(make_config(tmp), tmp) as d:
        d.wait_notify("READY=1")
        with d.http(_admin_token(d)) as api:
            for tenant in ("acme", "beta"):
                made = api.post("/api/v1/tenants", json={"name": tenant})
                assert made.status_code == 201, made.text
            boss = {"username": "acme-boss", "password": PASSWORD, "role": "tenant-admin"}
            made = api.post("/api/v1/users", json={**boss, "tenant": "acme"})
            assert made.status_code == 201, made.text
        yield d


def _admin_token(d: Daemon) -> str:
    return Path(d.env["TOWERBOX_STATE_DIR"], "cli-token").read_text().strip()


def _login(d: Daemon, username: str, password: str = PASSWORD) -> str:
    with d.http() as api:
        resp = api.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert resp.status_code in (200, 201), resp.text
        token: str = resp.json()["token"]
        return token


def _tenant(d: Daemon, name: str) -> dict[str, Any]:
    """What the node holds, read past the CLI."""
    with d.http(_admin_token(d)) as api:
        resp = api.get(f"/api/v1/tenants/{name}")
        assert resp.status_code == 200, resp.text
        detail: dict[str, Any] = resp.json()
        return detail


@pytest.fixture
def towerbox(
    daemon: Daemon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Towerbox:
    for key, value in daemon.cli_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path))  # no operator's own token file
    monkeypatch.setattr("towerbox_cli.parser.entry_points", declared_groups)
    admin = _admin_token(daemon)

    def run(*args: str, token: str | None = None, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setenv("TOWERBOX_TOKEN", token or admin)
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return run_cli(args, capsys)

    return run


def _rows(shown: str) -> dict[str, list[str]]:
    """``tenant show``'s table as LIMIT -> [USED, MAX]."""
    lines = shown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == ["LIMIT", "USED", "MAX"])
    rows = {}
    for line in lines[start + 1 :]:
        words = line.split()
        if len(words) != 3:
            break
        rows[words[0]] = words[1:]
    return rows


def _error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error ["), lines[0]
    return lines[0]


def test_show_prints_a_summary_and_json_is_the_nodes_answer(
    daemon: Daemon, towerbox: Towerbox
) -> None:
    status, shown, err = towerbox("tenant", "show", "beta")
    assert (status, err) == (EXIT_OK, "")
    lines = shown.splitlines()
    assert lines[0] == "tenant beta (quotas: defaults)"
    rows = _rows(shown)
    assert rows["vms"] == ["0", "10"]
    assert rows["memory_mib"] == ["0", "65536"]
    assert rows["whole_gpus"] == ["0", "0"]
    assert rows["grants.pinned_cores"] == ["0", "0"]
    assert lines[-1] == "granted: no flags; PCI devices: none"
    status, shown, _ = towerbox("tenant", "show", "beta", "--json")
    assert status == EXIT_OK
    assert json.loads(shown) == _tenant(daemon, "beta")
    status, shown, err = towerbox("tenant", "show", "ghost")
    assert (status, shown) == (EXIT_REFUSED, "")
    assert "[tenant_not_found] (HTTP 404)" in _error_line(err)


def test_set_quota_grant_and_revoke_change_the_node(daemon: Daemon, towerbox: Towerbox) -> None:
    status, shown, err = towerbox(
        "tenant", "set-quota", "acme", "vms=3", "memory_mib=unlimited", "gpu_slices.1g.10gb=2"
    )
    assert (status, shown, err) == (EXIT_OK, "tenant acme updated\n", "")
    node = _tenant(daemon, "acme")
    assert node["quotas_source"] == "set"
    quotas = node["quotas"]
    assert (quotas["vms"], quotas["memory_mib"], quotas["gpu_slices"]) == (3, -1, {"1g.10gb": 2})
    rows = _rows(towerbox("tenant", "show", "acme")[1])
    assert rows["vms"] == ["0", "3"]
    assert rows["memory_mib"] == ["0", "unlimited"]
    assert rows["gpu_slices.1g.10gb"] == ["0", "2"]

    status, shown, _ = towerbox("tenant", "set-quota", "acme", "vcpus=8", "--json")
    assert status == EXIT_OK
    answer = json.loads(shown)
    assert answer["tenant"] == "acme" and answer["over"] == []
    assert (answer["quotas"]["vcpus"], answer["quotas"]["vms"]) == (8, 3)
    assert _tenant(daemon, "acme")["quotas"] == answer["quotas"]

    status, shown, err = towerbox(
        "tenant",
        "grant",
        "acme",
        "pinned_cores=4",
        "isolated_cores",
        "numa_node_choice",
        "hugepages.2M=1024",
    )
    assert (status, shown, err) == (EXIT_OK, "tenant acme updated\n", "")
    grants = _tenant(daemon, "acme")["grants"]
    assert (grants["pinned_cores"], grants["isolated_cores"], grants["numa_node_choice"]) == (
        4,
        True,
        True,
    )
    assert grants["hugepages"] == {"2M": 1024}
    status, shown, _ = towerbox("tenant", "show", "acme")
    assert _rows(shown)["grants.pinned_cores"] == ["0", "4"]
    assert _rows(shown)["grants.hugepages.2M"] == ["0", "1024"]
    assert shown.splitlines()[-1] == "granted: isolated_cores, numa_node_choice; PCI devices: none"

    status, shown, _ = towerbox(
        "tenant", "revoke", "acme", "isolated_cores", "hugepages.2M", "--json"
    )
    assert status == EXIT_OK
    answer = json.loads(shown)
    assert answer["grants"]["isolated_cores"] is False
    assert answer["grants"]["hugepages"] == {}
    assert answer["grants"]["pinned_cores"] == 4
    assert _tenant(daemon, "acme")["grants"] == answer["grants"]

    # Words the command cannot read are refused before anything is sent.
    before = _tenant(daemon, "acme")
    status, shown, err = towerbox("tenant", "set-quota", "acme", "vms=lots")
    assert (status, shown) == (EXIT_USAGE, "")
    assert "[invalid_argument]" in _error_line(err)
    assert _tenant(daemon, "acme") == before


def test_user_create_with_a_tenant(daemon: Daemon, towerbox: Towerbox) -> None:
    status, shown, err = towerbox(
        "user", "create", "beta-boss", "--role", "tenant-admin", "--tenant", "beta"
    )
    assert (status, err) == (EXIT_OK, "")
    made = re.fullmatch(r"user beta-boss \(tenant-admin\) created; password: (\S+)\n", shown)
    assert made is not None, shown
    # The password it printed is the user's, and the user is the tenant's.
    with daemon.http(_login(daemon, "beta-boss", made.group(1))) as api:
        me = api.get("/api/v1/auth/me").json()
    assert me == {"username": "beta-boss", "role": "tenant-admin", "tenant": "beta"}

    status, shown, _ = towerbox(
        "user",
        "create",
        "beta-eyes",
        "--role",
        "viewer",
        "--tenant",
        "beta",
        "--password-stdin",
        "--json",
        stdin=PASSWORD + "\n",
    )
    assert status == EXIT_OK
    assert json.loads(shown) == {"username": "beta-eyes", "role": "viewer", "tenant": "beta"}
    _login(daemon, "beta-eyes")
    with daemon.http(_admin_token(daemon)) as api:
        users = {u["username"]: u for u in api.get("/api/v1/users").json()}
    assert (users["beta-boss"]["tenant"], users["beta-eyes"]["tenant"]) == ("beta", "beta")
    assert users["beta-eyes"]["role"] == "viewer"

    status, shown, err = towerbox(
        "user", "create", "lost", "--role", "tenant-user", "--tenant", "ghost"
    )
    assert (status, shown) == (EXIT_REFUSED, "")
    assert "[tenant_not_found]" in _error_line(err)
    with daemon.http(_admin_token(daemon)) as api:
        assert "lost" not in {u["username"] for u in api.get("/api/v1/users").json()}


def test_a_tenant_admin_reads_its_tenant_and_may_not_change_its_limits(
    daemon: Daemon, towerbox: Towerbox
) -> None:
    boss = _login(daemon, "acme-boss")
    status, shown, _ = towerbox("tenant", "show", "acme", token=boss)
    assert status == EXIT_OK and shown.startswith("tenant acme ")
    status, _, err = towerbox("tenant", "show", "beta", token=boss)
    assert status == EXIT_REFUSED
    assert "[tenant_not_found] (HTTP 404)" in _error_line(err)
    before = _tenant(daemon, "acme")
    # As a script runs it: the installed command, its exit status and one line.
    env = {**daemon.cli_env(), "TOWERBOX_TOKEN": boss}
    for words in (("set-quota", "acme", "vms=99"), ("grant", "acme", "pinned_cores=64")):
        proc = subprocess.run(
            [TOWERBOX, "tenant", *words],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert (proc.returncode, proc.stdout) == (EXIT_REFUSED, ""), proc.stderr
        line = _error_line(proc.stderr)
        assert line.startswith("error [infra_admin_required] (HTTP 403): "), line
    assert _tenant(daemon, "acme") == before
