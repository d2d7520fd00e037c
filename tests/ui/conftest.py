"""Fixtures for the UI: a real appliance per module, the simulated UI, Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nicegui.testing.user import User

from tests.ui.simulation import simulated_ui
from tests.ui.stack import CHROMIUM, Appliance, appliance


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    with appliance(tmp_path_factory.mktemp("appliance")) as running:
        yield running


@pytest.fixture
async def user(node: Appliance, tmp_path: Path) -> AsyncIterator[User]:
    async with simulated_ui(node.url, tmp_path / "sessions") as simulated:
        yield simulated


async def log_in(user: User, password: str) -> None:
    await user.open("/login")
    user.find("Username").type("admin")
    user.find("Password").type(password)
    user.find("Log in").click()
    await user.should_see(marker="dash-vm-total", retries=50)


def chromium_or_skip() -> str:
    """Chromium is part of the test set-up: missing it fails CI and skips elsewhere."""
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{CHROMIUM} is missing; the UI's browser tests need it (apt-get install chromium)"
        )
    pytest.skip(f"{CHROMIUM} is missing")
    raise AssertionError  # unreachable: skip raises
