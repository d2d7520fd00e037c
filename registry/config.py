"""Registry configuration: a TOML file, every key overridable by environment.

``TOWERBOX_REGISTRY_<SECTION>_<KEY>`` overrides ``[section] key``; top-level keys drop
the section (``TOWERBOX_REGISTRY_DATABASE``). ``TOWERBOX_REGISTRY_CONFIG`` names the
file. Tests and the bench use the environment so they never need a file under /etc.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from towerbox_core.config import build, read_toml
from towerbox_core.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/towerbox/registry.toml")
ENV_PREFIX = "TOWERBOX_REGISTRY_"


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8600
    # One worker is right for SQLite (one writer at a time); PostgreSQL takes several.
    workers: int = 1
    tls_cert: str = ""  # PEM; with tls_key the registry serves HTTPS only
    tls_key: str = ""
    token_ttl_s: int = 12 * 3600  # operator login tokens
    # Bodies past this get 413 body_too_large; journal batches and blob uploads have
    # their own bounds (4 MiB on the wire, blob_max_bytes).
    max_body_bytes: int = 2 * 1024 * 1024
    # Hostile clients: headers must arrive within header_timeout_s, idle keep-alive
    # connections close after keep_alive_s, past max_connections requests get 503.
    # A request's body must keep up body_min_bytes_per_s, stalling body_timeout_s at
    # most in all, else 408 body_timeout: a minimum pace, not a fixed time, since a
    # blob may be many GiB over a site's slow WAN (towerbox_core/http_protocol.py).
    # 60 s outlasts TCP's retransmission backoff after a short outage.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    body_min_bytes_per_s: float = 1024.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000


@dataclass(frozen=True)
class SitesConfig:
    # The agent's heartbeat interval; a site's status counts missed intervals.
    heartbeat_s: float = 15.0
    online_intervals: int = 3  # online while the last contact is within this many
    stale_intervals: int = 10  # stale up to this many, offline beyond
    enrollment_ttl_s: int = 24 * 3600


@dataclass(frozen=True)
class RolloutsConfig:
    """Defaults of a staged rollout (docs/rollouts.md); a rollout may set its own."""

    soak_s: float = 300.0  # how long a site stays healthy after applying
    offline_wait_s: float = 900.0  # how long a wave waits for a silent site
    canary: int = 1
    canary_failure_pct: float = 0.0  # any failure in the canary wave halts
    failure_pct: float = 10.0
    # How often each worker looks for a running rollout to move on; 0: never (a
    # registry that only answers reads, or a test that steps rollouts itself).
    tick_s: float = 1.0


@dataclass(frozen=True)
class RegistryConfig:
    state_dir: str = "/var/lib/towerbox-registry"
    # "" is the SQLite file registry.db in state_dir; "sqlite:///path" another file;
    # "postgresql://user[:password]@host[:port]/dbname" for a fleet; a unix socket
    # directory as libpq writes it: "postgresql://user@:5432/dbname?host=/run/postgresql".
    database: str = ""
    log_level: str = "INFO"
    # The largest blob an operator may upload (the registry as an artifact origin).
    blob_max_bytes: int = 256 * 1024**3
    serve: ServeConfig = field(default_factory=ServeConfig)
    sites: SitesConfig = field(default_factory=SitesConfig)
    rollouts: RolloutsConfig = field(default_factory=RolloutsConfig)

    @property
    def admin_password_file(self) -> Path:
        return Path(self.state_dir) / "admin-password"

    @property
    def cli_token_file(self) -> Path:
        return Path(self.state_dir) / "cli-token"

    @property
    def blob_dir(self) -> Path:
        return Path(self.state_dir) / "blobs"

    def database_url(self) -> DatabaseUrl:
        return parse_database_url(self.database, Path(self.state_dir))


@dataclass(frozen=True)
class DatabaseUrl:
    kind: str  # "sqlite" | "postgresql"
    path: str = ""  # sqlite file
    dbname: str = ""
    user: str = ""
    password: str = ""
    host: str = ""
    port: int = 5432


def parse_database_url(url: str, state_dir: Path) -> DatabaseUrl:
    if not url:
        return DatabaseUrl("sqlite", path=str(state_dir / "registry.db"))
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = parts.path if not parts.netloc else parts.netloc + parts.path
        if not path:
            raise ConfigError(f"database URL {url!r} names no file", code="bad_database_url")
        return DatabaseUrl("sqlite", path=os.path.abspath(path))
    if parts.scheme in ("postgresql", "postgres"):
        dbname = parts.path.lstrip("/")
        if not dbname:
            raise ConfigError(
                f"database URL {url!r} names no database: postgresql://user@host:port/dbname",
                code="bad_database_url",
            )
        try:
            port = parts.port or 5432
        except ValueError as err:
            raise ConfigError(f"database URL {url!r}: {err}", code="bad_database_url") from err
        return DatabaseUrl(
            "postgresql",
            dbname=dbname,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            # libpq's form for a unix socket directory: ...@:5432/db?host=/run/postgresql
            host=parse_qs(parts.query).get("host", [parts.hostname or ""])[0],
            port=port,
        )
    raise ConfigError(
        f"database URL {url!r}: use sqlite:///path or postgresql://user@host:port/db",
        code="bad_database_url",
    )


_SECTIONS: dict[str, type[Any]] = {
    "serve": ServeConfig,
    "sites": SitesConfig,
    "rollouts": RolloutsConfig,
}


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> RegistryConfig:
    """Read the TOML file (if any) and apply environment overrides."""
    env = os.environ if env is None else env
    if path is None:
        path = Path(env.get(ENV_PREFIX + "CONFIG", str(DEFAULT_CONFIG_PATH)))
    cfg: RegistryConfig = build(
        RegistryConfig, read_toml(path, "config"), env, ENV_PREFIX, str(path), _SECTIONS
    )
    cfg.database_url()  # refuse a bad URL at start, not at the first request
    if cfg.sites.heartbeat_s <= 0 or not 0 < cfg.sites.online_intervals < cfg.sites.stale_intervals:
        raise ConfigError(
            f"{path}: [sites] needs heartbeat_s > 0 and 0 < online_intervals < stale_intervals",
            code="bad_intervals",
        )
    if cfg.blob_max_bytes < 1:
        raise ConfigError(f"{path}: blob_max_bytes must be at least 1", field="blob_max_bytes")
    serve = cfg.serve
    if (
        min(serve.max_body_bytes, serve.max_connections) < 1
        or min(serve.header_timeout_s, serve.body_timeout_s, serve.keep_alive_s) <= 0
        or serve.body_min_bytes_per_s < 0
    ):
        raise ConfigError(
            f"{path}: [serve] max_body_bytes, header_timeout_s, body_timeout_s, "
            "keep_alive_s and max_connections must be above 0, body_min_bytes_per_s "
            "at least 0",
            field="serve",
        )
    if cfg.rollouts.tick_s < 0:
        raise ConfigError(f"{path}: [rollouts] tick_s must be 0 or more", field="rollouts")
    if bool(cfg.serve.tls_cert) != bool(cfg.serve.tls_key):
        raise ConfigError(f"{path}: [serve] tls_cert and tls_key go together", code="bad_tls")
    return replace(cfg, state_dir=os.path.abspath(cfg.state_dir))
