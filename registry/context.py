"""The registry's services wired to one open database: what the API and CLI share."""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from registry.config import RegistryConfig
from registry.services.desired import DesiredService
from registry.services.fleet import FleetService
from registry.services.operators import OperatorService
from registry.services.sites import SiteService
from registry.store.db import open_database


@dataclass
class Registry:
    cfg: RegistryConfig
    db: peewee.Database
    operators: OperatorService
    sites: SiteService
    desired: DesiredService
    fleet: FleetService

    @property
    def engine(self) -> str:
        return "sqlite" if isinstance(self.db, peewee.SqliteDatabase) else "postgresql"


def build_registry(cfg: RegistryConfig, bootstrap: bool = True) -> Registry:
    """Open and migrate the database; on first start create the admin operator."""
    db = open_database(cfg.database_url())
    operators = OperatorService(cfg.serve.token_ttl_s)
    if bootstrap:
        operators.bootstrap(cfg.admin_password_file, cfg.cli_token_file)
    sites = SiteService(cfg.sites)
    return Registry(
        cfg=cfg,
        db=db,
        operators=operators,
        sites=sites,
        desired=DesiredService(sites),
        fleet=FleetService(sites),
    )
