"""``towerbox`` against a real daemon process: what an operator reads when something is
wrong, and the exit status a script gets (the table in ``towerbox --help``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.appliance import make_config
from tests.support.daemon import TOWERBOX, Daemon, free_port, running_daemon
from towerbox_cli.main import main
from towerbox_core.commands import (
    EXIT_AUTH,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SERVER,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)

TIMES = "\N{MULTIPLICATION SIGN}"  # as the GPU backend names "H100 80GB x1"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("cli")
    with running_daemon(make_config(tmp), tmp) as d:
        d.wait_notify("READY=1")
        yield d


def towerbox(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOWERBOX, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command prints: no traceback, nothing else."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("error ["), lines[0]
    return lines[0]


def test_the_help_documents_the_exit_statuses() -> None:
    shown = towerbox(dict(os.environ), "--help")
    assert shown.returncode == EXIT_OK
    for line in ("1  refused", "2  usage", "3  auth", "4  unreachable", "5  server error"):
        assert line in shown.stdout
    assert "--yes" in shown.stdout


def test_no_token_says_where_it_looked_and_how_to_get_one(daemon: Daemon, tmp_path: Path) -> None:
    env = {**daemon.cli_env(), "HOME": str(tmp_path)}
    env.pop("TOWERBOX_TOKEN", None)
    env["TOWERBOX_STATE_DIR"] = str(tmp_path / "no-state")  # the node's token is not here
    shown = towerbox(env, "vm", "list")
    assert shown.returncode == EXIT_AUTH
    line = _error_line(shown)
    assert "[no_token] (HTTP 401)" in line
    assert f"unix:{env['TOWERBOX_API_SOCKET']} needs a token and none was found" in line
    assert "(looked in $TOWERBOX_TOKEN (unset), " in line
    assert f"{tmp_path}/.config/towerbox/token (not there)" in line
    assert (
        f"{tmp_path}/no-state/cli-token (not there; the node's CLI token, in state_dir "
        f"from {env['TOWERBOX_CONFIG']})"
    ) in line
    assert "towerbox token NAME" in line
    # /healthz needs no token: the same setup still reads it.
    assert towerbox(env, "health").returncode == EXIT_OK


def test_the_agents_token_is_made_with_the_root_token_its_config_names(
    daemon: Daemon, tmp_path: Path
) -> None:
    env = {**daemon.cli_env(), "HOME": str(tmp_path)}
    env.pop("TOWERBOX_TOKEN", None)
    root_token = Path(daemon.env["TOWERBOX_STATE_DIR"]) / "cli-token"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'appliance_url = "{daemon.url}"\nappliance_cli_token_file = "{root_token}"\n'
    )
    agent = ("agent", "--agent-config", str(config), "token")
    out = tmp_path / "agent-token"
    made = towerbox(env, *agent, "--out", str(out))
    assert made.returncode == EXIT_OK, made.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    with daemon.http(out.read_text().strip()) as api:  # a sync-agent's token
        assert api.get("/api/v1/journal/summary").status_code == 200
        assert api.get("/api/v1/vms").status_code == 403
    # A config naming a file that is not there: exit 3, saying where it looked.
    config.write_text(
        f'appliance_url = "{daemon.url}"\nappliance_cli_token_file = "/nonexistent"\n'
    )
    missing = towerbox(env, *agent)
    assert missing.returncode == EXIT_AUTH, missing.stdout
    line = _error_line(missing)
    assert line.startswith("error [token_missing]: cannot read the node's CLI token /nonexistent")
    assert "appliance_cli_token_file" in line
    # --admin-token names the file, over the config.
    assert towerbox(env, *agent, "--admin-token", str(root_token)).returncode == EXIT_OK


def test_a_refused_token_names_where_it_came_from(daemon: Daemon) -> None:
    env = {**daemon.cli_env(), "TOWERBOX_TOKEN": "tbx_not_a_token"}
    shown = towerbox(env, "vm", "list")
    assert shown.returncode == EXIT_AUTH
    line = _error_line(shown)
    assert "the token from $TOWERBOX_TOKEN was refused by unix:" in line
    assert "[invalid_token] (HTTP 401)" in line


@pytest.mark.parametrize("how", ["--config", "TOWERBOX_CONFIG"])
def test_a_config_that_does_not_exist_is_an_error(daemon: Daemon, tmp_path: Path, how: str) -> None:
    missing = tmp_path / "typo.toml"
    env = daemon.cli_env()
    if how == "--config":
        shown = towerbox(env, "--config", str(missing), "vm", "list")
    else:
        shown = towerbox({**env, "TOWERBOX_CONFIG": str(missing)}, "vm", "list")
    assert shown.returncode == EXIT_USAGE
    line = _error_line(shown)
    assert "[config_not_found]" in line
    origin = "--config" if how == "--config" else "$TOWERBOX_CONFIG"
    assert f"config file {missing} (from {origin}) does not exist" in line


def test_an_unreachable_daemon_names_the_socket_and_url(daemon: Daemon, tmp_path: Path) -> None:
    port = free_port()
    socket = tmp_path / "run" / "appliance.sock"
    env = {
        **daemon.cli_env(),
        "TOWERBOX_API_SOCKET": str(socket),
        "TOWERBOX_API_PORT": str(port),
    }
    shown = towerbox(env, "vm", "list")
    assert shown.returncode == EXIT_UNREACHABLE
    line = _error_line(shown)
    assert "[appliance_unreachable]" in line
    assert f"http://127.0.0.1:{port}" in line
    assert f"no unix socket at {socket}" in line
    # --url: the URL given is the one named.
    elsewhere = towerbox(env, "--url", f"http://127.0.0.1:{port}/", "vm", "list")
    assert elsewhere.returncode == EXIT_UNREACHABLE
    assert f"the appliance at http://127.0.0.1:{port}:" in _error_line(elsewhere)


class _Failing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"code": "internal_error", "detail": "the store is gone"}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_error_is_its_own_exit_status(daemon: Daemon) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        shown = towerbox(daemon.cli_env(), "--url", url, "vm", "list")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert shown.returncode == EXIT_SERVER
    assert _error_line(shown) == "error [internal_error] (HTTP 500): the store is gone"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["vm", "create", "x", "--spec", "{bad"], "invalid_json"),
        (["vm", "create", "x", "--spec", "[1]", "--vcpus", "2"], "invalid_json"),
        (["n6", "vnet-create", '{"tenant": '], "invalid_json"),
        (["gpu", "plan", "GPU-x", "[1,"], "invalid_json"),
        (["service", "deploy", "--file", "/nonexistent/web.toml"], "invalid_service_template"),
        (["prices", "add", "/nonexistent/prices.json"], "unreadable_file"),
        (["tenant", "set-quota", "acme", "vms=lots"], "invalid_argument"),
        (["vm", "create", "x", "--value", "novalue"], "invalid_argument"),
        (["--url", "localhost:8443", "vm", "list"], "invalid_url"),
    ],
)
def test_malformed_input_is_one_line_with_a_code(
    daemon: Daemon, args: list[str], code: str
) -> None:
    shown = towerbox(daemon.cli_env(), *args)
    assert shown.returncode == EXIT_USAGE
    assert f"error [{code}]" in _error_line(shown)


def test_a_bad_value_type_is_a_usage_error(daemon: Daemon) -> None:
    shown = towerbox(daemon.cli_env(), "vm", "create", "x", "--vcpus", "many")
    assert shown.returncode == EXIT_USAGE  # argparse's
    assert "invalid int value" in shown.stderr and "Traceback" not in shown.stderr


def test_a_refusal_is_exit_1_with_the_api_code(daemon: Daemon) -> None:
    missing = towerbox(daemon.cli_env(), "vm", "get", "nope")
    assert missing.returncode == EXIT_REFUSED
    assert _error_line(missing) == "error [vm_not_found] (HTTP 404): no VM named 'nope'"
    bad = towerbox(daemon.cli_env(), "vm", "create", "a<b", "--appliance", "demo")
    assert bad.returncode == EXIT_REFUSED
    assert "[invalid_name] (HTTP 422)" in _error_line(bad)


@pytest.mark.parametrize(
    ("flags", "code", "said"),
    [
        # The fixture host has 32 threads; one VM may not have more vCPUs than that.
        (["--vcpus", "33"], "insufficient_cpus", "asks for 33 vCPUs; this host has 32 CPU"),
        (["--memory-mib", "999999"], "insufficient_memory", "needs 999999 MiB of host memory"),
    ],
)
def test_a_vm_the_host_cannot_hold_is_refused_in_one_line(
    daemon: Daemon, flags: list[str], code: str, said: str
) -> None:
    env = daemon.cli_env()
    shown = towerbox(env, "vm", "create", "huge1", "--appliance", "demo", *flags)
    assert shown.returncode == EXIT_REFUSED
    line = _error_line(shown)
    assert line.startswith(f"error [{code}] (HTTP 409): VM huge1 ") and said in line, line
    assert "huge1" not in _states(env)


def test_people_get_tables_and_summaries_machines_get_json(daemon: Daemon) -> None:
    env = daemon.cli_env()
    made = towerbox(env, "vm", "create", "out1", "--appliance", "demo", "--start")
    assert made.returncode == EXIT_OK, made.stderr
    assert made.stdout.startswith("out1: running (desired running), 1 vCPU, 128 MiB")

    listed = towerbox(env, "vm", "list").stdout.splitlines()
    assert listed[0].split() == [
        "NAME",
        "STATE",
        "ROLE",
        "TENANT",
        "VCPUS",
        "MEMORY_MIB",
        "CPU_PCT",
    ]
    assert any(line.split()[:2] == ["out1", "running"] for line in listed[1:])

    gpus = towerbox(env, "gpu", "list").stdout
    assert f"H100 80GB {TIMES}1" in gpus and "\\u00d7" not in gpus
    assert "UUID" in gpus.splitlines()[1]
    gpus_json = towerbox(env, "gpu", "list", "--json").stdout
    assert TIMES in gpus_json  # JSON, and still readable
    assert json.loads(gpus_json)["gpus"][0]["model"] == "H100-80GB"

    # The figures come from the monitor's sweeps: the first one after the start.
    for _ in range(60):
        stats = towerbox(env, "vm", "stats", "out1").stdout.splitlines()
        if stats != ["out1: no sample yet"]:
            break
        time.sleep(0.5)
    assert len(stats) <= 5 and stats[0] == "out1: running"
    assert stats[1].startswith("CPU ")
    full = json.loads(towerbox(env, "vm", "stats", "out1", "--json").stdout)
    assert full["name"] == "out1" and "history" in full

    health = towerbox(env, "health").stdout.splitlines()
    assert health[0].startswith("test-node: ok, up ")
    assert "  libvirt: test:///default (simulated)" in health
    host = towerbox(env, "host").stdout
    assert "32 threads" in host and "{" not in host
    for args in (["vm", "get", "out1"], ["catalog"], ["n6", "trunks"], ["user", "list"]):
        shown = towerbox(env, *args)
        assert shown.returncode == EXIT_OK, shown.stderr
        assert not shown.stdout.lstrip().startswith(("{", "[")), shown.stdout
        assert isinstance(json.loads(towerbox(env, *args, "--json").stdout), dict | list)


class _Terminal(io.StringIO):
    """What an operator types, on a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def in_process(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``main()`` in this process, against the daemon (to give it a terminal)."""
    env = daemon.cli_env()
    monkeypatch.setenv("TOWERBOX_CONFIG", env["TOWERBOX_CONFIG"])
    token = (Path(env["TOWERBOX_STATE_DIR"]) / "cli-token").read_text().strip()
    monkeypatch.setenv("TOWERBOX_TOKEN", token)
    return ["--url", daemon.url]


def _states(env: dict[str, str]) -> dict[str, str]:
    listed = json.loads(towerbox(env, "vm", "list", "--json").stdout)
    return {vm["name"]: vm["state"] for vm in listed}


def test_deleting_a_running_vm_needs_force_and_a_yes(
    daemon: Daemon,
    in_process: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = daemon.cli_env()
    assert towerbox(env, "vm", "create", "del1", "--appliance", "demo", "--start").returncode == 0

    refused = towerbox(env, "vm", "delete", "del1")
    assert refused.returncode == EXIT_REFUSED
    assert "[vm_running]" in _error_line(refused) and "--force" in refused.stderr
    unasked = towerbox(env, "vm", "delete", "del1", "--force")  # a script: no terminal
    assert unasked.returncode == EXIT_USAGE
    assert "[confirmation_required]" in _error_line(unasked)

    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    assert main([*in_process, "vm", "delete", "del1", "--force"]) == EXIT_REFUSED
    asked = capsys.readouterr().err
    assert "delete VM del1 and its disks (running, role other)? [y/N]" in asked
    assert "[not_confirmed]" in asked
    assert _states(env)["del1"] == "running"

    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    assert main([*in_process, "vm", "delete", "del1", "--force"]) == EXIT_OK
    assert "del1 deleted" in capsys.readouterr().out
    assert "del1" not in _states(env)


def test_a_vran_vm_is_stopped_only_by_typing_its_name(
    daemon: Daemon,
    in_process: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = daemon.cli_env()
    made = towerbox(env, "vm", "create", "du1", "--appliance", "demo", "--role", "vran", "--start")
    assert made.returncode == EXIT_OK, made.stderr

    # Off a terminal even a plain stop of a vRAN VM needs --yes.
    assert towerbox(env, "vm", "stop", "du1").returncode == EXIT_USAGE
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))  # y is not its name
    assert main([*in_process, "vm", "stop", "du1"]) == EXIT_REFUSED
    assert "a vran VM, the cell goes down. Type du1 to confirm:" in capsys.readouterr().err
    assert _states(env)["du1"] == "running"

    monkeypatch.setattr(sys, "stdin", _Terminal("du1\n"))
    assert main([*in_process, "vm", "stop", "du1"]) == EXIT_OK
    assert _states(env)["du1"] == "shutoff"
    # A stopped VM is not running: deleting it needs no --force, and a script's --yes
    # answers the question a vRAN VM still asks.
    assert towerbox(env, "vm", "delete", "du1", "--yes").returncode == EXIT_OK


def test_gpu_apply_from_a_script_needs_yes(daemon: Daemon) -> None:
    env = daemon.cli_env()
    gpu = json.loads(towerbox(env, "gpu", "list", "--json").stdout)["gpus"][0]["uuid"]
    target = '{"counts": {"1g.10gb": 1}}'
    unasked = towerbox(env, "gpu", "apply", gpu, target)
    assert unasked.returncode == EXIT_USAGE
    assert "[confirmation_required]" in _error_line(unasked)
    assert "1g.10gb" not in towerbox(env, "gpu", "list").stdout  # nothing applied
    applied = towerbox(env, "gpu", "apply", gpu, target, "--yes")
    assert applied.returncode == EXIT_OK, applied.stderr
    assert "create  1g.10gb" in applied.stdout
    assert "1g.10gb@" in towerbox(env, "gpu", "list").stdout


def _trunks(env: dict[str, str]) -> list[str]:
    listed = json.loads(towerbox(env, "n6", "trunks", "--json").stdout)
    return [t["name"] for t in listed]


def test_deleting_a_trunk_asks_on_a_terminal_and_takes_yes(
    daemon: Daemon,
    in_process: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = daemon.cli_env()
    for name in ("brcli1", "brcli2"):
        made = towerbox(env, "n6", "trunk-set", name, "--kind", "linux", "--json")
        assert made.returncode == EXIT_OK, made.stderr
        assert json.loads(made.stdout)["name"] == name

    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    assert main([*in_process, "n6", "trunk-delete", "brcli1"]) == EXIT_REFUSED
    asked = capsys.readouterr().err
    assert "remove trunk brcli1 from the declaration? [y/N]" in asked
    assert "[not_confirmed]" in asked
    assert "brcli1" in _trunks(env)

    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    assert main([*in_process, "n6", "trunk-delete", "brcli1"]) == EXIT_OK
    assert "brcli1" not in _trunks(env)

    # A script says --yes up front; --json is taken as by every other n6 command.
    gone = towerbox(env, "n6", "trunk-delete", "brcli2", "--yes", "--json")
    assert gone.returncode == EXIT_OK, gone.stderr
    assert "brcli2" not in _trunks(env)
    missing = towerbox(env, "n6", "trunk-delete", "brcli2", "--yes")
    assert missing.returncode == EXIT_REFUSED
    assert "[unknown_trunk] (HTTP 404)" in _error_line(missing)


def test_a_trunk_with_a_bogus_datapath_is_refused_in_one_line(daemon: Daemon) -> None:
    env = daemon.cli_env()
    shown = towerbox(env, "n6", "trunk-set", "brdp", "--kind", "ovs", "--datapath", "bogus")
    assert shown.returncode == EXIT_REFUSED
    line = _error_line(shown)
    assert "[invalid_datapath_type] (HTTP 422)" in line and "'bogus'" in line
    assert "brdp" not in _trunks(env)


def test_a_trunk_on_a_datapath_this_host_lacks_is_refused_in_one_line(daemon: Daemon) -> None:
    env = daemon.cli_env()
    found = json.loads(towerbox(env, "n6", "status", "--json").stdout)["ovs_datapaths"]
    lacking = [d for d in ("system", "netdev") if d not in found["usable"]]
    if not lacking:
        pytest.skip(f"this node's OVS backend runs every datapath ({found['usable']})")
    shown = towerbox(env, "n6", "trunk-set", "brdp", "--kind", "ovs", "--datapath", lacking[0])
    assert shown.returncode == EXIT_REFUSED
    line = _error_line(shown)
    assert "[datapath_unavailable] (HTTP 409)" in line and f"({lacking[0]})" in line
    assert "brdp" not in _trunks(env)


def test_a_service_operation_that_fails_under_wait_exits_1(daemon: Daemon, tmp_path: Path) -> None:
    env = daemon.cli_env()
    role = '[[roles]]\nname = "db"\ncatalog = "demo"\n'
    fine = tmp_path / "fine.toml"
    fine.write_text('name = "fine"\n' + role)
    # Nothing listens on port 1: the deploy fails its health check and is rolled back.
    never = tmp_path / "never.toml"
    never.write_text(
        'name = "never"\n' + role + 'health = { kind = "tcp", port = 1, timeout_s = 0.5 }\n'
    )
    made = towerbox(env, "tenant", "create", "waits")
    assert made.returncode == EXIT_OK, made.stderr
    deploy = ("service", "deploy", "--tenant", "waits", "--file")
    done = towerbox(env, *deploy, str(fine), "--wait")
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.startswith("fine (waits): ready"), done.stdout
    # A running replica is its service's: the refusal says so, not "shut it down first".
    replica = towerbox(env, "vm", "delete", "fine-db-1")
    assert replica.returncode == EXIT_REFUSED
    assert _error_line(replica).startswith("error [vm_in_service] (HTTP 409)"), replica.stderr
    failed = towerbox(env, *deploy, str(never), "--wait")
    assert failed.returncode == EXIT_REFUSED, failed.stdout
    line = _error_line(failed)
    assert line.startswith("error [service_operation_failed]: the deploy of service never failed")
    assert "never-db-1 is not healthy" in line and "towerbox service show never" in line
    shown = towerbox(env, "service", "show", "never")
    assert shown.returncode == EXIT_OK and shown.stdout.startswith("never (waits): failed")
    # A count written as a string is refused, naming where it is; nothing is made.
    quoted = tmp_path / "quoted.toml"
    quoted.write_text('name = "quoted"\n' + role + 'count = "2"\n')
    refused = towerbox(env, *deploy, str(quoted))
    assert refused.returncode == EXIT_REFUSED
    line = _error_line(refused)
    assert line.startswith("error [invalid_request] (HTTP 400)"), line
    assert "service.roles[0].count: Expected `int`, got `str`" in line, line
    for name in ("fine", "never"):
        removed = towerbox(env, "service", "remove", name, "--yes", "--wait")
        assert removed.returncode == EXIT_OK, removed.stderr
