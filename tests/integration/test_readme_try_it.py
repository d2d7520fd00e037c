"""README.md's "Try it" commands, run in order as a new operator types them: each must
exit 0 and do what the README says next to it.

Against ``make run``'s configuration (etc/dev.toml, its relative ``var/`` paths, in a
scratch folder, with a free port) on real libvirt and Open vSwitch. The commands are
read from the README itself, so the test follows the README, not a copy of it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import free_port

REPO = Path(__file__).resolve().parents[2]
MARKER = "Try it from a second shell:"
# What the README promises beside a command, by a piece of the command; the output
# must show each string (polled: a booting guest writes its console over seconds).
PROMISES: dict[str, tuple[str | re.Pattern[str], ...]] = {
    "vm console demo1": ("TOWERBOX-DEMO-BOOTED", "TOWERBOX-SEED", "model=llama-3-8b"),
    "guest-ping": ('{"return":{}}',),
    "vm list": ("demo1",),
    # The datapath in use (the OVS backend's line, and what a new trunk gets), and the
    # last apply's result.
    "n6 status": (re.compile(r"datapath (system|netdev) \((kernel|userspace)\)"), "ok: yes"),
}
POLL_S = 240.0

pytestmark = [
    pytest.mark.root,
    pytest.mark.libvirtd,
    pytest.mark.ovs,
    pytest.mark.slow,
    pytest.mark.timeout(900),  # a guest booting under QEMU emulation on a busy machine
]


@dataclass(frozen=True)
class Step:
    command: str
    comment: str


def try_it_steps(readme: str) -> list[Step]:
    """The shell block after the marker, as whole commands with their comments.

    A command runs on over lines while a quote is open (the JSON of ``vnet-create``)
    or a line ends in a backslash.
    """
    after = readme.split(MARKER, 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    assert block, f"no ```sh block after {MARKER!r} in README.md"
    steps: list[Step] = []
    pending = ""
    for line in block.group(1).splitlines():
        if not line.strip() or (line.lstrip().startswith("#") and not pending):
            if steps and line.lstrip().startswith("#"):  # a comment's next line
                last = steps[-1]
                steps[-1] = Step(last.command, f"{last.comment} {line.strip('# ')}")
            continue
        pending = f"{pending}\n{line}" if pending else line
        if _open_quote(pending) or pending.endswith("\\"):
            continue
        command, comment = _split_comment(pending)
        steps.append(Step(command.strip(), comment))
        pending = ""
    assert not pending, f"unterminated command in README.md: {pending!r}"
    return steps


def _open_quote(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return True
    return False


def _split_comment(text: str) -> tuple[str, str]:
    """The command and its trailing ``# comment`` (a # outside quotes)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i], text[i + 1 :].strip()
    return text, ""


def test_the_steps_are_read_whole() -> None:
    steps = try_it_steps((REPO / "README.md").read_text())
    commands = [s.command for s in steps]
    assert commands[0] == "export TOWERBOX_CONFIG=etc/dev.toml"
    vnet = next(c for c in commands if "vnet-create" in c)
    assert vnet.endswith("}'") and '"ue_pools"' in vnet
    console = next(s for s in steps if "vm console" in s.command)
    assert "TOWERBOX-DEMO-BOOTED" in console.comment
    status = next(s for s in steps if "n6 status" in s.command)
    assert "datapath" in status.comment  # what PROMISES checks it shows
    deleted = [s.command for s in steps if shlex.split(s.command)[1:3] == ["vm", "delete"]]
    assert deleted, "the README no longer deletes its VM: _check_deleted checks nothing"


@pytest.fixture
def node_dir() -> Iterator[Path]:
    """A folder laid out like the checkout ``make run`` runs in, on a free port.

    Under /var/tmp and world-readable: QEMU runs as its own user and must read the
    VM's disks and seed there (pytest's tmp folders are 0700).
    """
    node = Path(tempfile.mkdtemp(prefix="towerbox-readme-", dir="/var/tmp"))
    node.chmod(0o755)
    port = free_port()
    (node / "etc").mkdir()
    config = (REPO / "etc" / "dev.toml").read_text()
    config, found = re.subn(r"(?m)^port = 8443$", f"port = {port}", config)
    assert found == 1, "etc/dev.toml no longer sets port = 8443"
    (node / "etc" / "dev.toml").write_text(config)
    (node / "var").mkdir()
    images = Path(os.environ.get("TOWERBOX_IMAGE_DIR", REPO / "var" / "images"))
    (node / "var" / "images").symlink_to(images)
    (node / ".venv").symlink_to(Path(sys.executable).parents[1])
    yield node
    shutil.rmtree(node, ignore_errors=True)


def _env(node: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")}
    env["PYTHONPATH"] = str(REPO)  # this checkout's code, whichever the venv was built from
    return env


def _run(node: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=node,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _clean_host(node: Path, env: dict[str, str]) -> None:
    """What the example leaves on the host, gone whatever step failed."""
    towerbox = ".venv/bin/towerbox"
    for command in (
        f"{towerbox} vm delete demo1 --force --yes || {towerbox} vm delete demo1",
        f"{towerbox} n6 vnet-delete acme llm",
        f"{towerbox} n6 trunk-delete br-n6",
        f"{towerbox} n6 apply --yes || {towerbox} n6 apply",
    ):
        _run(node, command, env)
    subprocess.run(["ip", "link", "del", "n6up"], capture_output=True, check=False)
    subprocess.run(["ovs-vsctl", "--if-exists", "del-br", "br-n6"], check=False)


def test_the_readme_try_it_commands_do_what_it_says(node_dir: Path) -> None:
    system = subprocess.run(
        ["virsh", "-c", "qemu:///system", "version"], capture_output=True, check=False
    )
    if system.returncode != 0 or shutil.which("ovs-vsctl") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the README's example: libvirtd or Open vSwitch is down")
        pytest.skip("needs libvirtd and Open vSwitch (make test starts them)")
    steps = try_it_steps((REPO / "README.md").read_text())
    env = _env(node_dir)
    export = steps[0].command
    assert export == "export TOWERBOX_CONFIG=etc/dev.toml", export
    env["TOWERBOX_CONFIG"] = "etc/dev.toml"
    log = (node_dir / "appliance.log").open("wb")
    daemon = subprocess.Popen(
        [".venv/bin/towerbox", "appliance"],
        cwd=node_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_healthy(node_dir, daemon)
        for step in steps[1:]:
            _check(node_dir, step, env)
    finally:
        _clean_host(node_dir, env)
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()


def _wait_healthy(node: Path, daemon: subprocess.Popen[bytes]) -> None:
    port = re.search(r"(?m)^port = (\d+)$", (node / "etc" / "dev.toml").read_text())
    assert port
    end = time.monotonic() + 60
    while time.monotonic() < end:
        assert daemon.poll() is None, (node / "appliance.log").read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port.group(1)}/healthz", timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("the appliance did not answer /healthz within 60 s")


def _check(node: Path, step: Step, env: dict[str, str]) -> None:
    promised = next((want for key, want in PROMISES.items() if key in step.command), ())
    end = time.monotonic() + (POLL_S if promised else 0)
    while True:
        try:
            done = _run(node, step.command, env)
        except subprocess.TimeoutExpired as err:
            raise AssertionError(f"README step {step.command!r} hung for {err.timeout} s") from err
        out = done.stdout + done.stderr
        missing = [w for w in promised if not _shows(out, w)]
        if done.returncode == 0 and not missing:
            _check_deleted(node, step, env)
            return
        if time.monotonic() > end:
            log = (node / "appliance.log").read_text()[-2000:]
            raise AssertionError(
                f"README step {step.command!r} (README: {step.comment or 'no comment'}) "
                f"exited {done.returncode}, missing {missing}:\n{out[-3000:]}\n"
                f"appliance log:\n{log}"
            )
        time.sleep(2)


def _shows(out: str, want: str | re.Pattern[str]) -> bool:
    return want in out if isinstance(want, str) else want.search(out) is not None


def _check_deleted(node: Path, step: Step, env: dict[str, str]) -> None:
    """After the README's ``vm delete NAME``: the node no longer knows the VM, and
    neither does libvirt (its domain is undefined, not only stopped)."""
    words = shlex.split(step.command)
    if words[1:3] != ["vm", "delete"]:
        return
    name = next(w for w in words[3:] if not w.startswith("-"))
    shown = _run(node, f"{shlex.quote(words[0])} vm get {shlex.quote(name)}", env)
    assert shown.returncode == 1, f"{name} still there after {step.command!r}: {shown.stdout}"
    assert "[vm_not_found]" in shown.stderr, shown.stderr
    listed = _run(node, f"{shlex.quote(words[0])} vm list --json", env)
    assert name not in [vm["name"] for vm in json.loads(listed.stdout)], listed.stdout
    domain = subprocess.run(
        ["virsh", "-c", "qemu:///system", "dominfo", name], capture_output=True, check=False
    )
    assert domain.returncode != 0, f"libvirt still has domain {name} after {step.command!r}"
