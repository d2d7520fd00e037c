"""``towerbox registry serve``: migrate once, then run uvicorn with one or more workers.

One worker gets the application object directly. Several workers (PostgreSQL) get a
factory path: each worker process opens its own database connection, and nothing
else is shared between them but the database.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import uvicorn

from registry.api.app import create_app
from registry.config import ENV_PREFIX, RegistryConfig
from registry.context import build_registry
from registry.metrics import MULTIPROC_ENV
from registry.workers import mark_supervisor
from towerbox_core.http_protocol import set_deadlines
from towerbox_core.logsetup import setup_logging

log = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Keep the objects made at start-up (the app, its routes, modules) out of the
    garbage collector's full passes, which would otherwise pause every request
    then being served for tens of milliseconds."""
    gc.collect()
    gc.freeze()


def _share_metrics(folder: Path) -> None:
    """Workers count requests into files here and a scrape sums them (see
    registry.metrics). Emptied first: a former run's workers' counts are gone with
    them. Set before uvicorn spawns the workers, whose fresh interpreters read it."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)


def serve(cfg: RegistryConfig, workers: int | None, config_path: Path | None) -> int:
    setup_logging(cfg.log_level)
    registry = build_registry(cfg)  # migrations and the admin user, before any worker
    registry.blobs.sweep_tmp()
    count = workers or cfg.serve.workers
    if count > 1 and registry.engine == "sqlite":
        log.warning(
            "%d workers on SQLite take turns at one write lock; one worker is as fast", count
        )
    options: dict[str, Any] = {
        "host": cfg.serve.host,
        "port": cfg.serve.port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
        # Hostile clients: slow senders are cut off, idle connections closed, and past
        # max_connections new requests get 503 rather than memory.
        "http": set_deadlines(
            cfg.serve.header_timeout_s, cfg.serve.body_timeout_s, cfg.serve.body_min_bytes_per_s
        ),
        "timeout_keep_alive": max(1, round(cfg.serve.keep_alive_s)),
        "limit_concurrency": cfg.serve.max_connections,
        "h11_max_incomplete_event_size": 16 * 1024,
    }
    if cfg.serve.tls_cert:
        options.update(ssl_certfile=cfg.serve.tls_cert, ssl_keyfile=cfg.serve.tls_key)
    scheme = "https" if cfg.serve.tls_cert else "http"
    log.info(
        "registry on %s://%s:%d, database %s, %d worker(s)",
        scheme,
        cfg.serve.host,
        cfg.serve.port,
        registry.engine,
        count,
    )
    if count == 1:
        app = create_app(registry)
        freeze_startup_objects()
        uvicorn.run(app, **options)
        return 0
    registry.db.close()
    _share_metrics(Path(cfg.state_dir) / "metrics")
    if config_path is not None:
        # Workers load the config again; they must find the same file.
        os.environ[ENV_PREFIX + "CONFIG"] = str(config_path.resolve())
    mark_supervisor()
    uvicorn.run("registry.api.app:create_app_from_env", factory=True, workers=count, **options)
    return 0
