"""Registry fixtures: a registry on SQLite or on the real PostgreSQL the session starts
(``pg_server``, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.context import Registry, build_registry
from tests.registry.fleetapi import Api, api_for, make_config


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def registry(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Registry]:
    database = ""
    if engine == "postgresql":
        database = request.getfixturevalue("pg_server").create_database()
    reg = build_registry(make_config(tmp_path, database))
    try:
        yield reg
    finally:
        reg.db.close()


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    reg = build_registry(make_config(tmp_path))
    try:
        yield reg
    finally:
        reg.db.close()


@pytest.fixture
def api(registry: Registry) -> Iterator[Api]:
    yield from api_for(registry)


@pytest.fixture
def sqlite_api(sqlite_registry: Registry) -> Iterator[Api]:
    yield from api_for(sqlite_registry)
