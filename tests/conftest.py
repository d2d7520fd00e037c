"""Suite-wide checks: tests leave no libvirt test-driver domains behind."""

from __future__ import annotations

from collections.abc import Iterator

import libvirt
import pytest

from appliance.backends.vm.libvirt_backend import TEST_URI


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
