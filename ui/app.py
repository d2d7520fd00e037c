"""The NiceGUI application: pages registered against one appliance client, then served."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from nicegui import app, ui

from towerbox_core import webui
from ui import live
from ui.api import ApplianceApi
from ui.deps import Deps
from ui.pages import (
    artifacts,
    dashboard,
    events,
    gpus,
    login,
    n6,
    services,
    tenants,
    top,
    usage,
    vm_detail,
    vms,
)
from ui.settings import UiSettings

log = logging.getLogger(__name__)


def build(settings: UiSettings, api: ApplianceApi | None = None) -> Deps:
    # A frame's read serves the other open pages for most of a frame interval: with
    # any number of pages open, health and the WAN status are read about once per
    # interval, a page polling alone still reads them at each of its polls, and no page
    # shows them more than two intervals old.
    shared_s = 0.9 * settings.frame_poll_s
    deps = Deps(
        settings,
        api
        or ApplianceApi(
            settings.appliance_url, settings.request_timeout_s, shared_max_age_s=shared_s
        ),
    )
    pages = (
        login,
        dashboard,
        vms,
        vm_detail,
        top,
        services,
        gpus,
        n6,
        artifacts,
        events,
        usage,
        tenants,
    )
    for page in pages:
        page.register(deps)
    app.on_shutdown(live.close_streams)
    app.on_shutdown(deps.api.aclose)
    return deps


def run_options(settings: UiSettings, storage_secret: str) -> dict[str, Any]:
    """ui.run's arguments (the core's, shared with the registry UI)."""
    return webui.run_options("Towerbox", storage_secret, settings.secure_cookie)


def serve(settings: UiSettings) -> None:
    from nicegui.storage import Storage

    webui.prepare_storage(settings.storage_dir)
    Storage.path = settings.storage_dir.resolve()
    app.storage = Storage()
    build(settings)
    log.info(
        "UI on http://%s:%d, appliance %s", settings.host, settings.port, settings.appliance_url
    )
    # A fresh secret per start: sessions end with the process, and no secret sits on disk.
    ui.run(
        host=settings.host,
        port=settings.port,
        uvicorn_logging_level="warning",
        **run_options(settings, secrets.token_urlsafe(32)),
    )
