"""The Litestar application: routes, auth, problem details, OpenAPI, latency metric."""

from __future__ import annotations

from litestar import Litestar
from litestar.di import Provide
from litestar.middleware import DefineMiddleware

from appliance.api.alerts import AlertController
from appliance.api.artifacts import ArtifactController
from appliance.api.auth import PUBLIC_PATHS, make_auth_middleware
from appliance.api.auth_routes import AuthController
from appliance.api.events import events
from appliance.api.gpus import GpuController
from appliance.api.n6 import N6Controller
from appliance.api.node import NodeController, healthz, metrics
from appliance.api.services import ServiceController
from appliance.api.sync import SyncController, sync_agent_guard
from appliance.api.tenants import TenantController
from appliance.api.top import TopController
from appliance.api.usage import UsageController
from appliance.api.vms import VmController
from appliance.context import Appliance
from towerbox_core import openapi_problems, problems
from towerbox_core.asgi_status import latency_middleware
from towerbox_core.json_request import BoundedJsonRequest
from towerbox_core.rate_limit import TokenBuckets, rate_limit_middleware


def create_app(appliance: Appliance) -> Litestar:
    api = appliance.cfg.api
    return Litestar(
        route_handlers=[
            healthz,
            metrics,
            events,
            AuthController,
            VmController,
            UsageController,
            NodeController,
            N6Controller,
            GpuController,
            SyncController,
            TenantController,
            ArtifactController,
            ServiceController,
            TopController,
            AlertController,
        ],
        guards=[sync_agent_guard],
        dependencies={"appliance": Provide(lambda: appliance, sync_to_thread=False)},
        middleware=[
            latency_middleware(appliance.metrics.api_seconds),
            rate_limit_middleware(TokenBuckets(api.rate_per_s, api.rate_burst)),
            DefineMiddleware(make_auth_middleware(appliance.auth)),
        ],
        exception_handlers=problems.problem_handlers(),
        request_class=BoundedJsonRequest,
        openapi_config=openapi_problems.bearer_openapi(
            "Towerbox appliance API", "token from POST /api/v1/auth/login", PUBLIC_PATHS
        ),
        request_max_body_size=api.max_body_bytes,
        debug=False,
        # The daemon configures logging once (journald-friendly); Litestar must not.
        logging_config=None,
    )
