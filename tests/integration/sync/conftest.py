"""One sync lab per test: appliance, registry in a network namespace, agent."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sync.lab import Lab, open_lab


def _databases() -> list[Any]:
    return ["sqlite", pytest.param("postgresql", marks=[pytest.mark.slow, pytest.mark.postgres])]


@pytest.fixture(params=_databases())
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""
        return
    # The registry lives in another network namespace: it reaches the server through
    # the unix socket in the server's folder, not 127.0.0.1.
    yield request.getfixturevalue("pg_server").create_socket_database("sync")


@pytest.fixture
def lab(tmp_path: Path, database: str) -> Iterator[Lab]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("network namespaces and nftables need root and the nft tool")
    with open_lab(tmp_path, database) as opened:
        yield opened
