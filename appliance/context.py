"""Wiring: build the appliance's parts from its configuration, once, at start."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import peewee

from appliance.backends.artifacts.store import ArtifactStore
from appliance.backends.gpu.probe import open_gpu_backend
from appliance.backends.gpu.protocol import GpuBackend
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.backends.gpu.vgpu import NoVgpu, SimulatedVgpu, SysfsVgpu, VgpuHost
from appliance.backends.host.sysfs_inventory import read_inventory
from appliance.backends.vm.libvirt_backend import LibvirtBackend, choose_uri, choose_virt_type
from appliance.catalog.cloud_init import cloud_init_dir
from appliance.catalog.loading import load_catalog
from appliance.catalog.model import CatalogEntry
from appliance.config import Config, parse_cpu_list
from appliance.domain.allocator import Allocator
from appliance.domain.gpu.catalog import default_catalog
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
from appliance.services.events import EventHub, sweep_changes
from appliance.services.gpu_binding import GpuBinder
from appliance.services.gpu_claims import GpuClaims
from appliance.services.gpu_layouts import GpuLayoutService
from appliance.services.gpu_schedules import GpuSchedules
from appliance.services.health_readings import HealthReader
from appliance.services.job_board import JobBoard
from appliance.services.journal_sync import JournalService
from appliance.services.measured import MeasuredUsage, sweep_readings
from appliance.services.measured_gpu import GpuMeter
from appliance.services.metering import MeteringService, now_us
from appliance.services.monitor import Monitor, owned_states, record_state_changes
from appliance.services.n6 import N6Service
from appliance.services.node_view import NodeViews
from appliance.services.reconcile import Reconciler
from appliance.services.service_admission import free_gpu_slices
from appliance.services.service_health import HealthProber
from appliance.services.service_manager import ServiceDeps, ServiceManager
from appliance.services.service_replicas import Replicas
from appliance.services.service_rollout import RollingUpdates
from appliance.services.service_templates import NodeFacts, services_dir
from appliance.services.sync import SyncStatusBoard
from appliance.services.tenants import TenantService
from appliance.services.top_view import TopView
from appliance.services.uptime import BOOT_ID, Uptime
from appliance.services.vm_admission import VmAdmission
from appliance.services.vm_boot import BootRestore
from appliance.services.vms import VmService
from appliance.store import journal
from appliance.store.compaction import compact
from appliance.store.db import open_database
from appliance.store.space import MIB, StateSpace, skipped_while_full
from towerbox_core.errors import ConfigError, TowerboxError
from towerbox_core.metering.ledger import Totals
from towerbox_core.wire import Actor
from upf_bridge.backends import backend_for as n6_backend_for
from upf_bridge.backends import probe as n6_probe
from upf_bridge.backends.base import NetBackend
from upf_bridge.model import TrunkKind

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

    # Jobs run on the scheduler's threads: each names itself as the journal's actor.

    def monitor_job(self) -> None:
        with journal.acting_as(Actor(job="monitor")):
            with skipped_while_full("a clock step"):
                journal.follow_clock_step()
            self.uptime.beat()
            before = self.monitor.snapshot
            snapshot = self.monitor.sweep()
            self.top.observe(snapshot)
            self.metrics.observe_sweep(snapshot.sweep_ms / 1000, owned_states(snapshot))
            with skipped_while_full("the monitor's state changes"):
                record_state_changes(snapshot)
            self.events.vms_changed(sweep_changes(before, snapshot))
            at = now_us()
            gpu_readings = self.gpu_meter.readings(at, snapshot)
            readings = sweep_readings(snapshot, snapshot.vnets) + gpu_readings
            with skipped_while_full("measured usage"):
                self.measured.observe(at, readings)

    def reconcile_job(self) -> None:
        with journal.acting_as(Actor(job="reconcile")), skipped_while_full("a reconcile pass"):
            report = self.reconciler.run()
            self.metrics.reconcile_restarts.set(len(report.restarted))
            self.snapshot_metrics.count_restarts(report.restarted)
            self.metrics.drift.set(len(report.drift))
            try:
                self.n6.reapply()
            except TowerboxError as err:
                log.error("N6 paths could not be repaired: %s (%s)", err.message, err.code)

    def compaction_job(self) -> None:
        with journal.acting_as(Actor(job="compaction")), skipped_while_full("a compaction"):
            compact(
                self.cfg.journal.keep_entries,
                self.cfg.journal.keep_days,
                before=self.metering.write_rollup,
            )

    def alerts_job(self) -> None:
        with journal.acting_as(Actor(job="alerts")), skipped_while_full("an alert evaluation"):
            self.alerts.evaluate(self.health.readings())

    def close(self) -> None:
        self._unlisten()
        self.events.close()
        self.services.runner.stop_all()
        self.artifacts.close()
        self.db.close()


def _n6_backends(cfg: Config) -> Callable[[TrunkKind], NetBackend]:
    choice = cfg.n6.backend
    if choice not in ("auto", "real", "simulated"):
        raise ConfigError(
            f"n6.backend must be auto, real or simulated, not {choice!r}", field="n6.backend"
        )

    def make(kind: TrunkKind) -> NetBackend:
        if choice == "auto":
            return n6_probe(kind, owner=cfg.n6.owner)
        return n6_backend_for(kind, owner=cfg.n6.owner, simulated=choice == "simulated")

    return make


def _gpu_service(cfg: Config) -> GpuLayoutService:
    choice = cfg.gpu.backend
    if choice not in ("auto", "nvml", "simulated"):  # narrowed for the Literal below
        raise ConfigError(
            f"gpu.backend must be auto, nvml or simulated, not {choice!r}", field="gpu.backend"
        )
    models = tuple(m.strip() for m in cfg.gpu.simulated_models.split(",") if m.strip())
    backend, line = open_gpu_backend(
        cast(Literal["auto", "nvml", "simulated"], choice),
        simulated_models=models,
        # A demo node keeps its simulated layout across daemon restarts.
        simulated_state=Path(cfg.state_dir) / "gpu-simulator.json",
    )
    # The drain and resume hooks come from the VM service, built after this one.
    service = GpuLayoutService(backend, line, default_catalog(), layouts=cfg.gpu.layouts)
    service.restore()
    return service


def _vgpu_host(cfg: Config, backend: GpuBackend, libvirt: LibvirtBackend) -> VgpuHost:
    if not isinstance(backend, SimulatedGpuBackend):
        return SysfsVgpu(Path(cfg.host.sysfs_root))
    if not cfg.gpu.simulated_vgpu:
        return NoVgpu("simulated vGPUs are off ([gpu] simulated_vgpu)")
    if not libvirt.simulated:
        # A real QEMU would look for the mediated device on the host and not start.
        return NoVgpu(
            "the GPUs are simulated but libvirt is real, and QEMU cannot attach a "
            "simulated vGPU; use the libvirt test driver for a GPU demo"
        )
    return SimulatedVgpu(backend)


def _service_manager(
    cfg: Config,
    backend: LibvirtBackend,
    vms: VmService,
    catalog: dict[str, CatalogEntry],
    gpus: GpuLayoutService,
    n6: N6Service,
    admission: VmAdmission,
    tenants: TenantService,
) -> ServiceManager:
    facts = NodeFacts(
        catalog=catalog,
        gpu_profiles=lambda: frozenset(
            p.name for g in gpus.backend.list_gpus() for p in gpus.profiles(g.uuid)
        ),
        vnet_exists=lambda tenant, name: any(
            (v.tenant, v.name) == (tenant, name) for v in n6.declared().vnets
        ),
        agent_unsupported=backend.guest_agent_unsupported,
    )
    deps = ServiceDeps(
        catalog=catalog,
        facts=facts,
        admission=admission,
        tenants=tenants,
        image_dir=Path(cfg.image_dir),
        templates_dir=services_dir(cfg.resolved_catalog_dir()),
    )
    manager = ServiceManager(deps, Replicas(vms, HealthProber(cfg, backend)))
    manager.recover()
    return manager


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
    n6 = N6Service(_n6_backends(cfg), eupf_url=cfg.n6.eupf_url)
    n6.probe()
    gpus = _gpu_service(cfg)
    monitor = Monitor(
        backend,
        cfg.jobs.history_samples,
        gpus.backend,
        stats_deadline_s=cfg.jobs.stats_deadline_s,
        unresponsive_after_s=cfg.jobs.unresponsive_after_s,
        vnets=n6.sweep_counters,
    )
    gpu_claims = GpuClaims(gpus)
    binder = GpuBinder(gpu_claims, _vgpu_host(cfg, gpus.backend, backend))
    tenants = TenantService(
        cfg.tenants.quotas(),
        host,
        # The GPUs' PCI addresses are fixed while the daemon runs: read the backend once.
        gpu_addresses=functools.cache(
            lambda: frozenset(i.pci_address for i in gpus.backend.list_gpus())
        ),
        vnet_count=n6.vnet_count,
        claim_profiles=gpu_claims.process_claim_profiles,
        gpu_profiles=lambda: frozenset(
            p.name for g in gpus.backend.list_gpus() for p in gpus.profiles(g.uuid)
        ),
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
    vms.undo_interrupted_creates()  # before anything counts the domains or the files
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
    artifacts = ArtifactService(
        ArtifactStore(Path(cfg.image_dir)),
        catalog,
        functools.partial(_vm_files, vms),
        cfg.artifacts,
        ArtifactOrigins(cfg.artifacts.registry_relay, sync),
    )
    started_at = time.time()
    services = _service_manager(cfg, backend, vms, catalog, gpus, n6, admission, tenants)
    rollouts = RollingUpdates(services, functools.partial(free_gpu_slices, gpus))
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
            gpus=gpus,
            restart_window_s=cfg.alerts.restart_loop_window_s,
        ),
        alerts=AlertService(cfg.alerts),
    )


def _vm_files(vms: VmService) -> dict[str, list[str]]:
    """Which VMs use which files of the image folder (base disks, kernels, initrds,
    model disks)."""
    used: dict[str, list[str]] = {}
    for record in vms.load_records():
        spec = record.spec
        names = [d.image for d in spec.disks if d.image is not None]
        if spec.boot is not None:
            names += [spec.boot.kernel, *([spec.boot.initrd] if spec.boot.initrd else [])]
        if spec.model_disk is not None:
            names.append(spec.model_disk)
        for name in names:
            used.setdefault(name, []).append(spec.name)
    return used
