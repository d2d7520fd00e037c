"""Reading the daemon's configuration: the TOML file, the environment over it, and
the checks a value must pass before the daemon starts on it (a bad one is a
ConfigError naming the file and the key)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import msgspec

from appliance.config import (
    DEFAULT_CONFIG_PATH,
    SECTIONS,
    ArtifactsConfig,
    Config,
    GpuConfig,
    GpuScheduleConfig,
    TenantsConfig,
)
from appliance.domain.alerts.rules import RULES_BY_ID, AlertBounds
from appliance.domain.gpu.target import LayoutRequest
from appliance.domain.quotas import check_quotas
from towerbox_core.api.tenants import Quotas
from towerbox_core.config import build, check_socket_path, read_toml
from towerbox_core.errors import ConfigError, TowerboxError


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any) and apply environment overrides."""
    env = os.environ if env is None else env
    if path is None:
        path = Path(env.get("TOWERBOX_CONFIG", str(DEFAULT_CONFIG_PATH)))
    return config_from(read_toml(path, "config"), env, str(path))


def config_from(raw: dict[str, Any], env: Mapping[str, str], origin: str) -> Config:
    """The configuration from a file's tables and the environment; ``origin`` names the
    file in error messages."""
    cfg: Config = build(Config, raw, env, "TOWERBOX_", origin, SECTIONS)
    cfg = replace(cfg, gpu=_check_gpu(cfg.gpu, origin))
    _check_tenants(cfg.tenants, origin)
    api = cfg.api
    if (
        min(api.max_body_bytes, api.rate_burst, api.max_connections) < 1
        or min(api.rate_per_s, api.keep_alive_s, api.header_timeout_s, api.body_timeout_s) <= 0
        or api.body_min_bytes_per_s < 0
    ):
        raise ConfigError(
            f"{origin}: [api] max_body_bytes, rate_per_s, rate_burst, keep_alive_s, "
            "max_connections, header_timeout_s and body_timeout_s must be above 0, "
            "body_min_bytes_per_s at least 0",
            field="api",
        )
    _check_artifacts(cfg.artifacts, origin)
    _check_alerts(cfg.alerts, origin)
    if cfg.state_reserve_mib < 0:
        raise ConfigError(
            f"{origin}: state_reserve_mib must be at least 0", field="state_reserve_mib"
        )
    host = cfg.host
    if not 0 < host.memory_overcommit <= 100 or host.memory_reserve_mib < 0:
        raise ConfigError(
            f"{origin}: [host] memory_overcommit must be above 0 (at most 100) and "
            "memory_reserve_mib at least 0",
            field="host.memory_overcommit",
        )
    if min(cfg.jobs.stats_deadline_s, cfg.jobs.unresponsive_after_s) <= 0:
        raise ConfigError(
            f"{origin}: [jobs] stats_deadline_s and unresponsive_after_s must be above 0",
            field="jobs",
        )
    # libvirt needs absolute paths in domain XML; relative ones are the caller's cwd.
    cfg = replace(
        cfg,
        state_dir=os.path.abspath(cfg.state_dir),
        image_dir=os.path.abspath(cfg.image_dir),
        catalog_dir=os.path.abspath(cfg.catalog_dir) if cfg.catalog_dir else "",
        api=replace(cfg.api, socket=os.path.abspath(cfg.api.socket) if cfg.api.socket else ""),
    )
    check_socket_path(cfg.api.socket, "api.socket", origin)
    check_socket_path(cfg.artifacts.registry_relay, "artifacts.registry_relay", origin)
    return cfg


def _check_gpu(gpu: GpuConfig, origin: str) -> GpuConfig:
    """Type the layout and schedule tables; refuse bad targets and cron expressions."""
    layouts: dict[str, LayoutRequest] = {}
    for name, raw in gpu.layouts.items():
        key = f"gpu.layouts.{name}"
        try:
            layouts[name] = msgspec.convert(raw, LayoutRequest)
            layouts[name].check(named=False)
        except (msgspec.ValidationError, TowerboxError) as err:
            raise ConfigError(f"{origin}: {key}: {err}", field=key) from err
    schedules: dict[str, GpuScheduleConfig] = {}
    for name, table in gpu.schedules.items():
        key = f"gpu.schedules.{name}"
        try:
            sched = msgspec.convert(table, GpuScheduleConfig)
        except msgspec.ValidationError as err:
            raise ConfigError(f"{origin}: {key}: {err}", field=key) from err
        try:
            _parse_cron(sched.cron)
        except ValueError as err:
            raise ConfigError(
                f"{origin}: {key}: bad cron expression {sched.cron!r}: {err}",
                code="invalid_cron",
                field=key,
            ) from err
        if sched.layout not in layouts:
            raise ConfigError(
                f"{origin}: {key}: no layout {sched.layout!r} in [gpu.layouts]",
                code="unknown_layout",
                field=key,
            )
        schedules[name] = sched
    return replace(gpu, layouts=layouts, schedules=schedules)


def _parse_cron(expression: str) -> None:
    """Raises ValueError for a cron expression the scheduler would refuse."""
    # Imported here: apscheduler brings asyncio, and every ``towerbox`` node command
    # reads this config; only a config with a schedule in it pays for the check.
    from apscheduler.triggers.cron import CronTrigger

    CronTrigger.from_crontab(expression, timezone="UTC")


def _check_artifacts(conf: ArtifactsConfig, origin: str) -> None:
    if (
        conf.concurrency < 1
        or conf.bandwidth_bytes_s < 0
        or conf.retries < 0
        or conf.retry_wait_s < 0
    ):
        raise ConfigError(
            f"{origin}: [artifacts] concurrency must be at least 1, bandwidth_bytes_s, "
            "retries and retry_wait_s at least 0",
            field="artifacts",
        )
    if conf.precache_minutes < 1 or conf.timeout_s <= 0 or conf.precache_check_s <= 0:
        raise ConfigError(
            f"{origin}: [artifacts] precache_minutes, timeout_s and precache_check_s must be "
            "above 0",
            field="artifacts",
        )
    if conf.precache_cron:
        try:
            _parse_cron(conf.precache_cron)
        except ValueError as err:
            raise ConfigError(
                f"{origin}: [artifacts] bad cron expression {conf.precache_cron!r}: {err}",
                code="invalid_cron",
                field="artifacts.precache_cron",
            ) from err


def _check_alerts(bounds: AlertBounds, origin: str) -> None:
    unknown = sorted(set(bounds.for_s) - RULES_BY_ID.keys())
    if unknown:
        raise ConfigError(
            f"{origin}: [alerts] for_s names no rule {', '.join(unknown)}; rules: "
            f"{', '.join(sorted(RULES_BY_ID))}",
            code="unknown_alert_rule",
            field="alerts.for_s",
        )
    figures = (
        bounds.interval_s,
        bounds.restart_loop_count,
        bounds.restart_loop_window_s,
        bounds.journal_oldest_unacked_s,
        bounds.wan_offline_s,
        bounds.keep_resolved_days,
    )
    if (
        min(figures) <= 0
        or bounds.journal_backlog_entries < 0
        or not 0 <= bounds.disk_free_ratio < 1
        or any(v < 0 for v in bounds.for_s.values())
    ):
        raise ConfigError(
            f"{origin}: [alerts] interval_s, restart_loop_count, restart_loop_window_s, "
            "journal_oldest_unacked_s, wan_offline_s and keep_resolved_days must be above 0; "
            "journal_backlog_entries and for_s at least 0; disk_free_ratio from 0 to below 1",
            code="invalid_alert_bounds",
            field="alerts",
        )


def _check_tenants(tenants: TenantsConfig, origin: str) -> None:
    try:
        check_quotas(msgspec.convert(asdict(tenants), Quotas, strict=False))
    except msgspec.ValidationError as err:
        raise ConfigError(f"{origin}: [tenants]: {err}", field="tenants") from err
    except TowerboxError as err:
        raise ConfigError(
            f"{origin}: [tenants]: {err.message}", field=f"tenants.{err.extra.get('field')}"
        ) from err
