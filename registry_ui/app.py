"""The NiceGUI application: the pages registered against one registry client, then served."""

from __future__ import annotations

import logging
import secrets

from nicegui import app, ui

from registry_ui.api import RegistryApi
from registry_ui.deps import Deps
from registry_ui.pages import (
    documents,
    enroll,
    login,
    overview,
    rollout_detail,
    rollouts,
    site_detail,
    sites,
)
from registry_ui.settings import RegistryUiSettings
from towerbox_core import webui

log = logging.getLogger(__name__)

PAGES = (login, overview, sites, site_detail, documents, rollouts, rollout_detail, enroll)


def build(settings: RegistryUiSettings, api: RegistryApi | None = None) -> Deps:
    deps = Deps(
        settings,
        api or RegistryApi(settings.registry_url, settings.request_timeout_s, settings.ca_file),
    )
    for page in PAGES:
        page.register(deps)
    app.on_shutdown(deps.api.aclose)
    return deps


def serve(settings: RegistryUiSettings) -> None:
    from nicegui.storage import Storage

    webui.prepare_storage(settings.storage_dir)
    Storage.path = settings.storage_dir.resolve()
    app.storage = Storage()
    build(settings)
    log.info(
        "registry UI on http://%s:%d, registry %s",
        settings.host,
        settings.port,
        settings.registry_url,
    )
    # A fresh cookie secret per start: sessions end with the process, no secret on disk.
    options = webui.run_options("Towerbox fleet", secrets.token_urlsafe(32), settings.secure_cookie)
    ui.run(host=settings.host, port=settings.port, uvicorn_logging_level="warning", **options)
