"""The UI app in NiceGUI's User simulation: the real pages, in-process, no browser."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from nicegui import app, core, ui
from nicegui.functions.download import download
from nicegui.functions.navigate import Navigate
from nicegui.functions.notify import notify
from nicegui.storage import Storage
from nicegui.testing.general import nicegui_reset_globals
from nicegui.testing.user import User

from ui.api import ApplianceApi
from ui.app import build, run_options
from ui.settings import UiSettings


@asynccontextmanager
async def simulated_ui(
    appliance_url: str, storage: Path, api: ApplianceApi | None = None
) -> AsyncIterator[User]:
    """``api``: a client of an appliance in this process (its clock the test's), or None
    for the one at ``appliance_url``."""
    # Like nicegui.testing.user_simulation, but with our own pages and cookie settings.
    Storage.path = storage
    app.storage = Storage()
    settings = UiSettings(appliance_url=appliance_url, storage_dir=storage, frame_poll_s=0.5)
    with nicegui_reset_globals():
        os.environ["NICEGUI_USER_SIMULATION"] = "true"
        try:
            build(settings, api)
            ui.run(**run_options(settings, "simulation secret"))
            async with (
                core.app.router.lifespan_context(core.app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(core.app), base_url="http://test"
                ) as client,
            ):
                yield User(client)
        finally:
            os.environ.pop("NICEGUI_USER_SIMULATION", None)
            ui.navigate = Navigate()
            ui.notify = notify
            ui.download = download
