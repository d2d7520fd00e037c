"""GET /metrics: the registry's Prometheus exposition.

Behind the operator token like every route outside sync: a scraper uses an API token
of a viewer operator (``POST /api/v1/tokens``), which can read and change nothing.
"""

from __future__ import annotations

from litestar import get

from registry.api.auth import OperatorRequest
from registry.api.deps import RegistryDep


# A worker thread: the fleet figures are a few aggregate queries over every site.
@get("/metrics", media_type="text/plain; version=0.0.4", sync_to_thread=True)
def metrics(request: OperatorRequest, registry: RegistryDep) -> str:
    """Prometheus text exposition: sites by status, journal lag, ingest, desired-state
    results and conflicts aggregated over the fleet, and the API's latency."""
    return registry.metrics.render().decode()
