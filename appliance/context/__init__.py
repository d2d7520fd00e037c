"""Wiring: build the appliance's parts from its configuration, once, at start.

The parts whose building takes a decision (which backend, which vGPU host) are made
in ``builders``; the scheduled jobs' bodies live in ``jobs``.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import peewee

from appliance.backends.artifacts.store import ArtifactStore
from appliance.backends.host.sysfs_inventory import read_inventory
from appliance.backends.vm.libvirt_backend import LibvirtBackend, choose_uri, choose_virt_type
from appliance.catalog.cloud_init import cloud_init_dir
from appliance.catalog.loading import load_catalog
from appliance.catalog.model import CatalogEntry
from appliance.config import Config, parse_cpu_list
from appliance.context import jobs
from appliance.context.builders import (
    gpu_profile_names,
    gpu_service,
    n6_backends,
    node_versions,
    service_manager,
    vgpu_host,
    vm_files,
)
from appliance.domain.allocator import Allocator
from appliance.domain.host import HostInventory
from appliance.metrics import Metrics
from appliance.metrics_health import HealthCollector
from appliance.metrics_snapshot import SnapshotCollector
from appliance.services.alerts import AlertService
from appliance.services.artifact_origin import ArtifactOrigins
from appliance.services.artifact_precache import Precache
from appliance.services.artifacts import ArtifactService
from appliance.services.auth import AuthService
from appliance.services.desired import DesiredService
from appliance.services.desired_services import ServicesAdapter
from appliance.services.events import EventHub
from appliance.services.gpu_binding import GpuBinder
from appliance.services.gpu_claims import GpuClaims
from appliance.services.gpu_layouts import GpuLayoutService
from appliance.services.gpu_schedules import GpuSchedules
from appliance.services.health_readings import HealthReader
from appliance.services.job_board import JobBoard
from appliance.services.journal_sync import JournalService
from appliance.services.measured import MeasuredUsage
from appliance.services.measured_gpu import GpuMeter
from appliance.services.metering import MeteringService
from appliance.services.monitor import Monitor
from appliance.services.n6 import N6Service
from appliance.services.node_view import NodeViews
from appliance.services.reconcile import Reconciler
from appliance.services.service_manager import ServiceManager
from appliance.services.service_rollout import RollingUpdates
from appliance.services.sync import SyncStatusBoard
from appliance.services.tenants import TenantService
from appliance.services.top_view import TopView
from appliance.services.uptime import BOOT_ID, Uptime
from appliance.services.vm_admission import VmAdmission
from appliance.services.vm_boot import BootRestore
from appliance.services.vms import VmService
from appliance.store import journal
from appliance.store.db import open_database
from appliance.store.space import MIB, StateSpace, skipped_while_full
from towerbox_core.errors import TowerboxError
from towerbox_core.metering.ledger import Totals
from towerbox_core.wire import Actor

log = logging.getLogger(__name__)


@dataclass
class Appliance:
    cfg: Config
    db: peewee.SqliteDatabase
    host: HostInventory
    backend: LibvirtBackend
    backend_note: str | None  # why the simulated backend was chosen, if it was
    allocator: Allocator
    catalog: dict[str, CatalogEntry]
    monitor: Monitor
    reconciler: Reconciler
    auth: AuthService
    vms: VmService
    metrics: Metrics
    started_at: float
    n6: N6Service
    gpus: GpuLayoutService
    gpu_claims: GpuClaims
    gpu_schedules: GpuSchedules
    desired: DesiredService
    sync: SyncStatusBoard
    journal: JournalService
    events: EventHub
    views: NodeViews
    tenants: TenantService
    metering: MeteringService
    measured: MeasuredUsage
    gpu_meter: GpuMeter
    uptime: Uptime
    artifacts: ArtifactService
    precache: Precache
    services: ServiceManager
    rollouts: RollingUpdates
    top: TopView
    health: HealthReader
    alerts: AlertService

    def __post_init__(self) -> None:
        self.metrics.count_usage(self._usage_totals)
        self.metrics.registry.register(HealthCollector(self.health.node_health, self.alerts.active))
        self.snapshot_metrics = SnapshotCollector(
            lambda: self.monitor.snapshot,
            gpus_simulated=self.gpus.backend.simulated,
            # The applied document as stored: validated when it was applied.
            vnets=lambda: (
                f"{v['tenant']}/{v['name']}" for v in self.n6.applied_document()["vnets"]
            ),
            attached=self.n6.attached_vms,
        )
        self.metrics.registry.register(self.snapshot_metrics)
        self._unlisten = journal.add_commit_listener(self.events.journal_committed)

    def _usage_totals(self) -> Totals:
        # Through the field at each scrape: a test may swap the service.
        return self.metering.totals()

    # The scheduled jobs (their bodies: appliance.context.jobs).

    def monitor_job(self) -> None:
        jobs.monitor(self)

    def reconcile_job(self) -> None:
        jobs.reconcile(self)

    def compaction_job(self) -> None:
        jobs.compaction(self)

    def alerts_job(self) -> None:
        jobs.alerts(self)

    def close(self) -> None:
        self._unlisten()
        self.events.close()
        self.services.runner.stop_all()
        self.artifacts.close()
        self.db.close()


def _artifacts(
    cfg: Config, catalog: dict[str, CatalogEntry], vms: VmService, sync: SyncStatusBoard
) -> ArtifactService:
    return ArtifactService(
        ArtifactStore(Path(cfg.image_dir)),
        catalog,
        functools.partial(vm_files, vms),
        cfg.artifacts,
        ArtifactOrigins(cfg.artifacts.registry_relay, sync),
    )


def build_appliance(cfg: Config) -> Appliance:
    for d in (Path(cfg.state_dir), cfg.disk_dir, cfg.console_dir):
        d.mkdir(parents=True, exist_ok=True)
    # QEMU runs as its own user on real nodes and must reach disks and console
    # logs below the state directory; the secrets in it are 0600 files.
    Path(cfg.state_dir).chmod(0o755)
    space = StateSpace(Path(cfg.state_dir), cfg.state_reserve_mib * MIB)
    db = open_database(cfg.db_path, space)
    # Before anything journals a VM's state: after a reboot the VMs stopped with the host.
    uptime = Uptime(Path(cfg.state_dir) / "alive", Path(cfg.host.procfs_root) / BOOT_ID)
    rebooted = uptime.started()
    host = read_inventory(
        Path(cfg.host.sysfs_root), Path(cfg.host.procfs_root), Path(cfg.host.dev_root)
    )
    uri, note = choose_uri(cfg.libvirt.uri)
    if note:
        log.warning("libvirt: using the simulated test driver: %s", note)
    virt_type = choose_virt_type(cfg.libvirt.virt_type, uri, host.hw_virt, host.kvm_device)
    backend = LibvirtBackend(uri, virt_type)
    log.info("libvirt backend: %s", backend.describe())
    allocator = Allocator(host, parse_cpu_list(cfg.host.reserved_cpus))
    catalog = load_catalog(cfg.resolved_catalog_dir())
    auth = AuthService(cfg.api.token_ttl_s)
    n6 = N6Service(n6_backends(cfg), eupf_url=cfg.n6.eupf_url)
    n6.probe()
    gpus = gpu_service(cfg)
    monitor = Monitor(
        backend,
        cfg.jobs.history_samples,
        gpus.backend,
        stats_deadline_s=cfg.jobs.stats_deadline_s,
        unresponsive_after_s=cfg.jobs.unresponsive_after_s,
        vnets=n6.sweep_counters,
    )
    gpu_claims = GpuClaims(gpus)
    binder = GpuBinder(gpu_claims, vgpu_host(cfg, gpus.backend, backend))
    tenants = TenantService(
        cfg.tenants.quotas(),
        host,
        # The GPUs' PCI addresses are fixed while the daemon runs: read the backend once.
        gpu_addresses=functools.cache(
            lambda: frozenset(i.pci_address for i in gpus.backend.list_gpus())
        ),
        vnet_count=n6.vnet_count,
        claim_profiles=gpu_claims.process_claim_profiles,
        gpu_profiles=functools.partial(gpu_profile_names, gpus),
    )
    n6.vnet_quota = tenants.check_vnet
    admission = VmAdmission(cfg.host, host, tenants)
    vms = VmService(
        cfg,
        backend,
        allocator,
        catalog,
        monitor,
        vnets=n6.attachment,
        gpus=binder,
        admission=admission,
    )
    # Before anything counts the domains or the files; journalled as the boot's.
    with journal.acting_as(Actor(job="boot")):
        vms.undo_interrupted_creates()
    # Why VMs meant to run are off survives a restart: rebuilt before anything starts one.
    if failed := vms.start_failures.restore():
        log.info("failed starts kept from before the restart: %s", ", ".join(failed))
    gpus.set_hooks(vms.gpu_drain.drain, vms.gpu_drain.resume)
    for record in vms.load_records():
        try:
            allocator.restore(record.spec.name, record.allocation)
        except TowerboxError as err:
            # Keep the daemon up: the VM keeps running, the operator sees why.
            log.error("allocation of VM %s cannot be restored: %s", record.spec.name, err.message)
    # The layouts were re-created above; the N6 paths and the VMs follow (vm_boot).
    # With no room left at all, the restore's journal writes fail: the daemon still
    # starts and serves reads (logged), rather than not starting.
    with journal.acting_as(Actor(job="boot")), skipped_while_full("the restore after a reboot"):
        BootRestore(backend, vms.prepare_restart, vms.gpu_drain, n6.reapply).run(rebooted)
    if auth.bootstrap(cfg.admin_password_file, cfg.cli_token_file):
        log.warning("admin password written to %s", cfg.admin_password_file)
    gpu_schedules = GpuSchedules(gpus, cfg.gpu.schedules)
    catalog_dir = cfg.resolved_catalog_dir()
    desired = DesiredService(
        gpus, gpu_schedules, n6, catalog, cloud_init_dir(catalog_dir), auth, tenants
    )
    desired.restore()
    sync = SyncStatusBoard()
    artifacts = _artifacts(cfg, catalog, vms, sync)
    started_at = time.time()
    services = service_manager(cfg, backend, vms, catalog, gpus, n6, admission, tenants)
    rollouts = RollingUpdates(services, services.deps.free_gpu_slices)
    desired.attach_services(ServicesAdapter(services, rollouts))
    return Appliance(
        cfg=cfg,
        db=db,
        host=host,
        backend=backend,
        backend_note=note,
        allocator=allocator,
        catalog=catalog,
        monitor=monitor,
        reconciler=Reconciler(
            backend, cfg.node_name, start=vms.prepare_restart, lifecycle_lock=vms.lifecycle_lock
        ),
        auth=auth,
        vms=vms,
        metrics=Metrics(),
        started_at=started_at,
        n6=n6,
        gpus=gpus,
        gpu_claims=gpu_claims,
        gpu_schedules=gpu_schedules,
        desired=desired,
        sync=sync,
        journal=JournalService(),
        events=EventHub(),
        views=NodeViews(
            node_name=cfg.node_name,
            image_dir=Path(cfg.image_dir),
            started_at=started_at,
            backend=backend,
            backend_note=note,
            gpus=gpus,
            n6=n6,
            monitor=monitor,
            host=host,
            allocator=allocator,
            catalog=catalog,
            space=space,
            versions=node_versions(gpus.backend, binder.vgpu),
        ),
        tenants=tenants,
        metering=MeteringService(),
        measured=MeasuredUsage(),
        # A GPU's sampled rates stand for a few sweeps at most (measured_gpu).
        gpu_meter=GpuMeter(max_gap_s=max(60.0, 4 * cfg.jobs.monitor_interval_s)),
        uptime=uptime,
        artifacts=artifacts,
        precache=Precache(artifacts),
        services=services,
        rollouts=rollouts,
        top=TopView(monitor, cfg.jobs.history_samples),
        health=HealthReader(
            allocator=allocator,
            sync=sync,
            space=space,
            jobs=JobBoard(),
            monitor=monitor,
            restart_window_s=cfg.alerts.restart_loop_window_s,
        ),
        alerts=AlertService(cfg.alerts),
    )
