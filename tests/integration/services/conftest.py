"""A tenant node per test for the service tests, its API clients, and a listener the
replicas' TCP health checks reach (see tests.support.services)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.context import Appliance
from tests.support.services import Listener, listener, point_replicas, service_node
from tests.support.tenancy import Api, clients


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from service_node(tmp_path)


@pytest.fixture
def api(appliance: Appliance) -> Iterator[Api]:
    """An API client, the admin's headers and acme-admin's."""
    yield from clients(appliance)


@pytest.fixture
def server(appliance: Appliance) -> Iterator[Listener]:
    with listener() as srv:
        point_replicas(appliance)
        yield srv
