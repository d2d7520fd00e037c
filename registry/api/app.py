"""The registry's Litestar application: routes, auth, problem details, OpenAPI."""

from __future__ import annotations

import gc
import logging

from litestar import Litestar, get
from litestar.di import Provide
from litestar.middleware import DefineMiddleware

from registry.api.auth import PUBLIC_PATHS, make_auth_middleware
from registry.api.blobs import BlobController
from registry.api.deps import RegistryDep
from registry.api.fleet_overview import fleet_overview
from registry.api.metrics import metrics
from registry.api.operator_routes import OperatorController
from registry.api.provisioning import ProvisioningController
from registry.api.rollouts import RolloutController
from registry.api.sites import SiteController
from registry.api.sync import RAW_BODIES, SyncController
from registry.api.usage import UsageController
from registry.api.versions import VersionController
from registry.config import load_config
from registry.context import Registry, build_registry
from registry.rollout_ticker import RolloutTicker
from registry.store.db import SCHEMA_VERSION
from registry.workers import end_with_supervisor
from towerbox_core import openapi_problems, problems
from towerbox_core.api.fleet import Health
from towerbox_core.asgi_status import latency_middleware
from towerbox_core.http_protocol import set_deadlines
from towerbox_core.json_request import BoundedJsonRequest
from towerbox_core.logsetup import setup_logging

log = logging.getLogger(__name__)


@get("/healthz")
async def healthz(registry: RegistryDep) -> Health:
    return Health(status="ok", database=registry.engine, schema_version=SCHEMA_VERSION)


def create_app(registry: Registry) -> Litestar:
    ticker = RolloutTicker(registry)
    return Litestar(
        route_handlers=[
            healthz,
            metrics,
            BlobController,
            OperatorController,
            SiteController,
            SyncController,
            UsageController,
            fleet_overview,
            ProvisioningController,
            VersionController,
            RolloutController,
        ],
        on_startup=[ticker.start],
        on_shutdown=[ticker.stop],
        dependencies={"registry": Provide(lambda: registry, sync_to_thread=False)},
        middleware=[
            latency_middleware(registry.metrics.api_seconds),
            DefineMiddleware(make_auth_middleware(registry)),
        ],
        exception_handlers=problems.problem_handlers(),
        request_class=BoundedJsonRequest,
        openapi_config=openapi_problems.bearer_openapi(
            "Towerbox fleet registry API",
            "operator token (POST /api/v1/auth/login) or site secret",
            PUBLIC_PATHS,
            RAW_BODIES,
        ),
        request_max_body_size=registry.cfg.serve.max_body_bytes,
        debug=False,
        logging_config=None,
    )


def create_app_from_env() -> Litestar:
    """uvicorn's factory: each worker process opens its own database connection."""
    cfg = load_config()
    setup_logging(cfg.log_level)
    end_with_supervisor()
    registry = build_registry(cfg, bootstrap=False)
    serve = cfg.serve  # this worker's connections
    set_deadlines(serve.header_timeout_s, serve.body_timeout_s, serve.body_min_bytes_per_s)
    app = create_app(registry)
    gc.collect()
    gc.freeze()  # as registry.server does for one worker: no full passes over start-up objects
    return app
