"""Suite-wide: markers by what a test needs, cheap password hashing, and checks that
tests leave nothing behind.

Every test and every test module is checked for libvirt test-driver domains, child
processes and network namespaces it left; a leak fails it (and is removed, so that it
does not spill into the next test).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import argon2
import libvirt
import psutil
import pytest

from appliance.backends.vm.libvirt_backend import TEST_URI
from tests.support.postgres import PostgresServer, PostgresUnavailable, postgres_server
from towerbox_core import accounts

pytest_plugins = ["tests.support.n6host", "tests.support.journal_clock"]

# A test that uses one of these fixtures needs what the marks say.
FIXTURE_MARKS = {
    "n6_host": ("root",),
    "ovs": ("ovs", "root"),
    "pg_server": ("postgres",),
}


@pytest.hookimpl(tryfirst=True)  # before -m selects by them
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, marks in FIXTURE_MARKS.items():
            if fixture in names:
                for mark in marks:
                    item.add_marker(mark)
    HOST_WIDE.update(_path(item) for item in items if _host_wide(item))


# -- modules that use the host's libvirtd or Open vSwitch, one at a time -------------

# The modules (paths) this run collected that drive qemu:///system or the host's Open
# vSwitch through an appliance.
HOST_WIDE: set[str] = set()
HOST_LOCK = Path(tempfile.gettempdir()) / "towerbox-tests-host.lock"


def _host_wide(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(mark) for mark in ("libvirtd", "ovs"))


def _path(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.fixture(scope="module", autouse=True)
def _host_wide_one_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """``make test`` runs modules on two workers (``-n 2 --dist loadfile``), and so
    may two runs on one host. Modules that use the host's libvirtd or Open vSwitch
    hold a lock while they run. Their appliances name domains after the VMs they
    create ("web"), and qemu:///system holds one domain of a name; their N6 backends
    take the product's rule priorities and route tables, and each repairs what it
    finds there as its own drift. Everything else a test makes on the host carries
    its run's pid or a random tag (tests/support/n6host.py, tests/integration/sync/
    wan.py), so those modules run beside anything."""
    if request.node.nodeid not in HOST_WIDE:
        yield
        return
    with HOST_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


# -- password hashing -----------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """Argon2id at its lowest cost in the test process: the suite hashes and verifies a
    few hundred passwords, each costing 64 MiB and three passes at the product's
    settings. A hash carries its own parameters, so verifying works either way; the
    daemons the tests start as processes keep the product's settings."""
    cheap = argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    # The dummy hash is made from the hasher in use at the first login.
    accounts._dummy_hash.cache_clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "_hasher", cheap)
        yield
    accounts._dummy_hash.cache_clear()


# -- PostgreSQL -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL server for the session: each test makes its own database
    in it (``create_database``), which costs a fraction of a second where a server of
    its own costs its initdb and start, several seconds."""
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI: {err}")
        pytest.skip(f"PostgreSQL not available: {err}")


# -- libvirt test-driver domains ------------------------------------------------------


def _test_driver_domains() -> set[str]:
    conn = libvirt.open(TEST_URI)
    try:
        return {d.UUIDString() for d in conn.listAllDomains()}
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def _no_leaked_domains() -> Iterator[None]:
    # The test driver's state lives as long as the process: a domain one test leaves
    # behind would change what the next test sees.
    before = _test_driver_domains()
    yield
    leaked = _test_driver_domains() - before
    if leaked:
        conn = libvirt.open(TEST_URI)
        for uuid in leaked:
            dom = conn.lookupByUUIDString(uuid)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        conn.close()
        pytest.fail(f"test left libvirt test-driver domains behind: {sorted(leaked)}")


# -- child processes and network namespaces -------------------------------------------

# Children get this long to exit after a test: a process sent SIGTERM in a fixture's
# teardown may still be on its way out.
GRACE_S = 5.0
NETNS_DIR = Path("/run/netns")  # what `ip netns list` lists

# Namespaces this process asked `ip netns add` for, in order. Other runs on this host
# and other xdist workers share its namespaces, so only the ones made from here count.
_made_netns: list[str] = []


def _record_netns(event: str, args: tuple[object, ...]) -> None:
    if event != "subprocess.Popen":
        return
    argv = args[1]
    if not isinstance(argv, list | tuple) or len(argv) < 4:
        return
    words = [os.fsdecode(a) if isinstance(a, str | bytes) else "" for a in argv]
    for i in range(len(words) - 2):
        if words[i] == "netns" and words[i + 1] == "add":
            _made_netns.append(words[i + 2])


sys.addaudithook(_record_netns)


Process = tuple[int, float]  # pid and start time: pids are reused


# A browser started by a module's fixture starts helper processes (storage, network,
# renderers) when a page first needs them and keeps them for later pages: they belong
# to the browser, which the module's own check sees go.
BROWSERS = ("chromium", "chrome", "headless_shell")


def _children(keep_from: dict[Process, str] | None = None) -> dict[Process, str]:
    """Live descendants of this process; with keep_from, leaving out those a browser
    among keep_from started."""
    browsers = {pid for (pid, _), cmd in (keep_from or {}).items() if _is_browser(cmd)}
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue  # exited; subprocess reaps it on its next call
            if browsers and any(p.pid in browsers for p in child.parents()):
                continue
            found[child.pid, child.create_time()] = " ".join(child.cmdline()) or child.name()
        except psutil.NoSuchProcess:
            continue
    return found


def _is_browser(cmdline: str) -> bool:
    program = Path(cmdline.split(" ", 1)[0]).name
    return program in BROWSERS and "--type=" not in cmdline


def _namespaces() -> set[str]:
    try:
        return {p.name for p in NETNS_DIR.iterdir()}
    except FileNotFoundError:
        return set()


def _leaks(
    before_procs: dict[Process, str], before_ns: set[str], made_ns: set[str]
) -> tuple[dict[Process, str], set[str]]:
    deadline = time.monotonic() + GRACE_S
    while True:
        procs = {k: v for k, v in _children(before_procs).items() if k not in before_procs}
        netns = (_namespaces() - before_ns) & made_ns if made_ns else set()
        if (not procs and not netns) or time.monotonic() > deadline:
            return procs, netns
        time.sleep(0.1)


def _remove(procs: dict[Process, str], netns: set[str]) -> None:
    handles = []
    for pid, started in procs:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == started:
                proc.kill()
                handles.append(proc)
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(handles, timeout=5)
    for name in netns:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _check(what: str) -> Iterator[None]:
    before_procs, before_ns, first = _children(), _namespaces(), len(_made_netns)
    yield
    made = set(_made_netns[first:])
    procs, netns = _leaks(before_procs, before_ns, made)
    if procs or netns:
        _remove(procs, netns)
        found = [f"process {pid}: {cmd}" for (pid, _), cmd in sorted(procs.items())]
        found += [f"network namespace {name}" for name in sorted(netns)]
        pytest.fail(f"{what} left behind: " + "; ".join(found))


@pytest.fixture(scope="module", autouse=True)
def _module_leaves_nothing(request: pytest.FixtureRequest) -> Iterator[None]:
    """Module-scoped fixtures (a daemon, a lab) have gone by the module's end."""
    yield from _check(f"module {request.module.__name__} (its fixtures)")


@pytest.fixture(autouse=True)
def _test_leaves_nothing() -> Iterator[None]:
    """Compared with the state after the session's and module's fixtures started."""
    yield from _check("test")
