"""The registry's services wired to one open database: what the API and CLI share."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import peewee

from registry.config import RegistryConfig
from registry.metrics import RegistryMetrics
from registry.services.blobs import BlobService
from registry.services.desired import DesiredService
from registry.services.fleet import FleetService
from registry.services.operators import OperatorService
from registry.services.prices import PriceBookService
from registry.services.provisioning import ProvisioningService
from registry.services.rollouts import RolloutService
from registry.services.sites import SiteService
from registry.services.usage import UsageService
from registry.store.db import open_database
from registry.store.fleet_stats import FleetStats, fleet_stats
from registry.store.models import now_ms
from towerbox_core.api.usage import FleetUsageReport

T = TypeVar("T")


@dataclass
class Registry:
    cfg: RegistryConfig
    db: peewee.Database
    operators: OperatorService
    sites: SiteService
    desired: DesiredService
    fleet: FleetService
    usage: UsageService
    prices: PriceBookService
    blobs: BlobService
    metrics: RegistryMetrics
    provisioning: ProvisioningService
    rollouts: RolloutService

    @property
    def engine(self) -> str:
        return "sqlite" if isinstance(self.db, peewee.SqliteDatabase) else "postgresql"

    def fleet_usage(
        self,
        site: str | None,
        tenant: str | None,
        from_: str | None,
        to: str | None,
        group_by: str,
    ) -> FleetUsageReport:
        """Fleet usage rated with the registry's price book."""
        return self.usage.report(site, tenant, from_, to, group_by, self.prices.books().versions)

    async def run_db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one short database call for an async handler.

        SQLite: right here on the event loop. It takes one writer at a time anyway, and
        a hop to a worker thread would cost more than the work. PostgreSQL: in a worker
        thread (each with its own connection), so the worker keeps taking requests
        while one waits on the server, and different sites commit side by side.
        """
        if self.engine == "sqlite":
            return fn(*args)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))


def build_registry(cfg: RegistryConfig, bootstrap: bool = True) -> Registry:
    """Open and migrate the database; on first start create the admin operator."""
    db = open_database(cfg.database_url())
    operators = OperatorService(cfg.serve.token_ttl_s)
    if bootstrap:
        operators.bootstrap(cfg.admin_password_file, cfg.cli_token_file)
    sites = SiteService(cfg.sites)
    desired = DesiredService(sites)
    fleet = FleetService(sites)

    def read_fleet() -> FleetStats:
        now = now_ms()
        return fleet_stats(now, *sites.status.since(now))

    return Registry(
        cfg=cfg,
        db=db,
        operators=operators,
        sites=sites,
        desired=desired,
        fleet=fleet,
        usage=UsageService(sites),
        prices=PriceBookService(),
        blobs=BlobService(cfg.blob_dir, cfg.blob_max_bytes),
        metrics=RegistryMetrics(read_fleet),
        provisioning=ProvisioningService(sites, fleet),
        rollouts=RolloutService(cfg.rollouts, sites, desired),
    )
