"""Suite-wide: markers by what a test needs; tests leave no libvirt test-driver domains."""

from __future__ import annotations

from collections.abc import Iterator

import libvirt
import pytest

from appliance.backends.vm.libvirt_backend import TEST_URI

pytest_plugins = ["tests.support.n6host"]

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
