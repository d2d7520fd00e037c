"""Registry fixtures: a registry on SQLite or on a real PostgreSQL the session starts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.context import Registry, build_registry
from tests.registry.fleetapi import Api, api_for, make_config
from tests.support.postgres import PostgresServer, PostgresUnavailable, postgres_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI: {err}")
        pytest.skip(f"PostgreSQL not available: {err}")


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
