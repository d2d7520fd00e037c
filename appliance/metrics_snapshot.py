"""Per-VM, per-GPU, per-MIG-instance and per-VNet metrics, from the monitor's snapshot.

A scrape renders the latest sweep (``NodeSnapshot``) with the labels the node's own
records give it: a VM's name, tenant and role from its row, a MIG instance's owner and
role from the GPU's committed layout, a VNet's attached VMs from the VMs' NICs. It
never calls libvirt, NVML or netlink: those are read once per sweep, by the monitor,
however often Prometheus scrapes. A figure the sweep did not read (a GPU whose
telemetry failed, a driver without per-instance utilization) has no series rather
than a made-up zero.

Labels: ``tenant`` is ``_node`` for what the node's operator holds itself;
``instance`` is a MIG instance's start slot (what layouts and claims name it by,
stable across the instance's re-creation), ``""`` for the whole GPU.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from appliance.domain.gpu.binding import is_process_owner
from appliance.domain.vm_spec import GpuAttach, VmSpec
from appliance.metrics import NODE_TENANT_LABEL
from appliance.services.gpu_drift import committed_layouts, sample_drift
from appliance.services.gpu_telemetry import GpuSample
from appliance.services.monitor import NodeSnapshot
from appliance.store.models import Vm
from towerbox_core.api.gpus import Layout, MigRole
from towerbox_core.metering.fold import ACTIVE_STATES

_MIB = 1024 * 1024
_KIB = 1024
_VM = ("vm", "tenant")
_VNET = ("tenant", "vnet")
Family = GaugeMetricFamily | CounterMetricFamily


@dataclass(frozen=True)
class VmRow:
    id: str
    name: str
    tenant: str  # the label: "_node" for the node's own
    role: str


def _tenant(tenant: str | None) -> str:
    return tenant or NODE_TENANT_LABEL


def _gauge(name: str, doc: str, labels: Iterable[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Iterable[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


class SnapshotCollector(Collector):
    """The snapshot-derived families; see the module's docstring.

    ``vnets`` gives the applied VNets as "tenant/name" keys and ``attached`` the VM
    names attached to each: both from the node's store, never from the switch.
    """

    def __init__(
        self,
        snapshot: Callable[[], NodeSnapshot],
        *,
        gpus_simulated: bool,
        vnets: Callable[[], Iterable[str]],
        attached: Callable[[], dict[str, list[str]]],
    ) -> None:
        self._snapshot = snapshot
        self._simulated = "true" if gpus_simulated else "false"
        self._vnets = vnets
        self._attached = attached
        self._lock = threading.Lock()
        self._restarts: Counter[str] = Counter()  # VM name -> restarts since start

    def count_restarts(self, vm_names: Iterable[str]) -> None:
        """Restarts the node made (reconcile, by a VM's restart policy)."""
        with self._lock:
            self._restarts.update(vm_names)

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        # Plain tuples: a scrape reads every VM, and peewee's model rows cost more.
        vms = Vm.select(Vm.id, Vm.name, Vm.tenant, Vm.role).tuples()
        rows = [
            VmRow(vm_id, name, _tenant(tenant), role or "")
            for vm_id, name, tenant, role in vms.iterator()
        ]
        layouts = committed_layouts()
        yield from self._vms(snapshot, rows)
        yield self._slices(snapshot, rows, layouts)
        yield from self._gpus(snapshot, layouts)
        yield from self._vnet_families(snapshot)

    def describe(self) -> Iterator[Metric]:
        # Registering must not read the store: the families, empty.
        yield from _vm_families().values()
        yield _slice_family()
        yield from _gpu_families().values()
        yield from _vnet_families().values()

    # -- VMs -------------------------------------------------------------------------

    def _vms(self, snapshot: NodeSnapshot, rows: list[VmRow]) -> Iterator[Metric]:
        f = _vm_families()
        with self._lock:
            restarts = dict(self._restarts)
        add = _adder(f)
        for row in rows:
            sample = snapshot.vms.get(row.id)
            state = sample.state if sample is not None else "missing"
            f["state"].add_metric([row.name, row.tenant, row.role, state], 1)
            # One labels dict for all of a VM's series: 2,000 samples a scrape on a
            # node of 100 VMs, and nothing changes a sample's labels once made.
            labels = {"vm": row.name, "tenant": row.tenant}
            add("restarts", labels, restarts.get(row.name, 0))
            if sample is None:
                continue
            add("cpu", labels, sample.cpu_time_ns / 1e9)
            add("memory", labels, sample.memory_kib * _KIB)
            add("rss", labels, sample.rss_kib * _KIB)
            add("rx_bytes", labels, sample.net_rx_bytes)
            add("tx_bytes", labels, sample.net_tx_bytes)
            add("read_bytes", labels, sample.disk_read_bytes)
            add("write_bytes", labels, sample.disk_write_bytes)
            figures = snapshot.figures.get(row.id)
            if figures is None:
                continue  # only its state read so far
            add("rx_packets", labels, figures.net_rx_packets)
            add("tx_packets", labels, figures.net_tx_packets)
            add("read_requests", labels, figures.disk_read_requests)
            add("write_requests", labels, figures.disk_write_requests)
        yield from f.values()

    @staticmethod
    def _slices(
        snapshot: NodeSnapshot, rows: list[VmRow], layouts: dict[str, Layout]
    ) -> GaugeMetricFamily:
        family = _slice_family()
        by_name = {row.name: row for row in rows}
        for gpu, layout in sorted(layouts.items()):
            for inst in layout.instances:
                vm = by_name.get(inst.owner or "")
                if vm is not None and not is_process_owner(inst.owner or ""):
                    family.add_metric([vm.name, vm.tenant, gpu, inst.profile, str(inst.start)], 1)
        for vm, gpu in _passthrough(snapshot, by_name):
            family.add_metric([vm.name, vm.tenant, gpu, "", ""], 1)
        return family

    # -- GPUs ------------------------------------------------------------------------

    def _gpus(self, snapshot: NodeSnapshot, layouts: dict[str, Layout]) -> Iterator[Metric]:
        f = _gpu_families()
        for uuid, sample in sorted(snapshot.gpus.items()):
            t = sample.telemetry
            f["info"].add_metric([uuid, sample.pci_address, self._simulated], 1)
            _utilization(f["utilization"], sample)
            if t.memory_used_mib is not None:
                f["memory_used"].add_metric([uuid, ""], t.memory_used_mib * _MIB)
            if t.memory_total_mib is not None:
                f["memory_total"].add_metric([uuid, ""], t.memory_total_mib * _MIB)
            for inst in t.instances:
                placed = sample.placements.get(inst.gpu_instance_id)
                if placed is None:
                    continue  # not placed (a layout change under way)
                slot = str(placed[1])
                if inst.memory_used_mib is not None:
                    f["memory_used"].add_metric([uuid, slot], inst.memory_used_mib * _MIB)
                if inst.memory_total_mib is not None:
                    f["memory_total"].add_metric([uuid, slot], inst.memory_total_mib * _MIB)
            if t.power_w is not None:
                f["power"].add_metric([uuid], t.power_w)
            if t.temperature_c is not None:
                f["temperature"].add_metric([uuid], t.temperature_c)
            if t.ecc_corrected is not None:
                f["ecc"].add_metric([uuid, "corrected"], t.ecc_corrected)
            if t.ecc_uncorrected is not None:
                f["ecc"].add_metric([uuid, "uncorrected"], t.ecc_uncorrected)
            _layout_families(f, sample, layouts.get(uuid))
        yield from f.values()

    # -- VNets -----------------------------------------------------------------------

    def _vnet_families(self, snapshot: NodeSnapshot) -> Iterator[Metric]:
        f = _vnet_families()
        attached = self._attached()
        add = _adder(f)
        for key in sorted({*self._vnets(), *snapshot.vnets}):
            tenant, _, name = key.partition("/")
            labels = {"tenant": _tenant(tenant), "vnet": name}
            add("attached", labels, len(attached.get(key, ())))
            counters = snapshot.vnets.get(key)
            if counters is None:
                continue  # applied since the last sweep
            add("rx_bytes", labels, counters.rx_bytes)
            add("tx_bytes", labels, counters.tx_bytes)
            add("rx_packets", labels, counters.rx_packets)
            add("tx_packets", labels, counters.tx_packets)
        yield from f.values()


def _adder(families: dict[str, Family]) -> Callable[[str, dict[str, str], float], None]:
    """Add a sample to one of ``families`` by key, with a labels dict of the caller's
    (which it must not change afterwards): as ``add_metric`` does, less a dict per
    sample."""
    names = {k: f.name + ("_total" if f.type == "counter" else "") for k, f in families.items()}

    def add(key: str, labels: dict[str, str], value: float) -> None:
        families[key].samples.append(Sample(names[key], labels, value))

    return add


def _passthrough(snapshot: NodeSnapshot, by_name: dict[str, VmRow]) -> Iterator[tuple[VmRow, str]]:
    """Running VMs holding a whole GPU, with its UUID (as metering counts them)."""
    by_address = {s.pci_address: s.uuid for s in snapshot.gpus.values()}
    query = Vm.select(Vm.id, Vm.name, Vm.spec).where(
        Vm.spec.contains(f'"{GpuAttach.PASSTHROUGH.value}"')
    )
    for vm in query:
        spec = msgspec.json.decode(vm.spec, type=VmSpec)
        sample = snapshot.vms.get(vm.id)
        row = by_name.get(vm.name)
        if spec.gpu is None or spec.gpu.attach is not GpuAttach.PASSTHROUGH or not spec.gpu.gpu:
            continue
        if row is None or sample is None or sample.state not in ACTIVE_STATES:
            continue
        yield row, by_address.get(spec.gpu.gpu, spec.gpu.gpu)


def _utilization(family: Family, sample: GpuSample) -> None:
    """Per MIG instance where the driver reports it so, else for the whole GPU."""
    t = sample.telemetry
    per_instance = False
    for inst in t.instances:
        placed = sample.placements.get(inst.gpu_instance_id)
        if inst.utilization_pct is not None and placed is not None:
            family.add_metric([sample.uuid, str(placed[1]), "mig"], inst.utilization_pct / 100)
            per_instance = True
    if not per_instance and t.utilization_pct is not None:
        family.add_metric([sample.uuid, "", "gpu"], t.utilization_pct / 100)


def _layout_families(f: dict[str, Family], sample: GpuSample, committed: Layout | None) -> None:
    """Each present instance with its owner and role, and how far the GPU is from its
    committed layout (``sample_drift``: as the alert rules and the GPU view count it)."""
    known = committed.by_placement() if committed is not None else {}
    present = sorted(set(sample.placements.values()), key=lambda p: p[1])
    for profile, start in present:
        was = known.get((profile, start))
        owner = was.owner or "" if was else ""
        role = (was.role if was else MigRole.B2B).value
        f["mig_info"].add_metric([sample.uuid, str(start), profile, owner, role], 1)
    told = sample_drift(sample, committed)
    if told is None:
        return  # where the instances are was not read this sweep: no drift to tell
    f["drift"].add_metric([sample.uuid], len(told.drift))
    f["missing"].add_metric([sample.uuid], told.missing)


# -- the families ------------------------------------------------------------------


def _vm_families() -> dict[str, Family]:
    return {
        "state": _gauge(
            "towerbox_vm_state",
            "1 for the VM's current state as the API shows it (missing: no domain)",
            ("vm", "tenant", "role", "state"),
        ),
        "cpu": _counter("towerbox_vm_cpu_seconds", "CPU time of the VM's vCPUs", _VM),
        "memory": _gauge("towerbox_vm_memory_bytes", "Memory the VM has now (balloon)", _VM),
        "rss": _gauge("towerbox_vm_memory_rss_bytes", "Host memory its QEMU uses", _VM),
        "rx_bytes": _counter("towerbox_vm_network_receive_bytes", "Bytes its NICs got", _VM),
        "tx_bytes": _counter("towerbox_vm_network_transmit_bytes", "Bytes its NICs sent", _VM),
        "rx_packets": _counter("towerbox_vm_network_receive_packets", "Packets its NICs got", _VM),
        "tx_packets": _counter(
            "towerbox_vm_network_transmit_packets", "Packets its NICs sent", _VM
        ),
        "read_bytes": _counter("towerbox_vm_disk_read_bytes", "Bytes read from its disks", _VM),
        "write_bytes": _counter("towerbox_vm_disk_write_bytes", "Bytes written to its disks", _VM),
        "read_requests": _counter(
            "towerbox_vm_disk_read_requests", "Read requests to its disks", _VM
        ),
        "write_requests": _counter(
            "towerbox_vm_disk_write_requests", "Write requests to its disks", _VM
        ),
        "restarts": _counter(
            "towerbox_vm_restarts",
            "Restarts the node made by the VM's restart policy since the daemon started",
            _VM,
        ),
    }


def _slice_family() -> GaugeMetricFamily:
    return _gauge(
        "towerbox_vm_gpu_slice",
        '1 per MIG slice (instance: its start slot) or whole GPU (instance "") a VM holds',
        ("vm", "tenant", "gpu", "profile", "instance"),
    )


def _gpu_families() -> dict[str, Family]:
    gpu_instance = ("gpu", "instance")
    return {
        "info": _gauge(
            "towerbox_gpu_info",
            "1 per GPU the last sweep read; simulated: the node's GPU simulator",
            ("gpu", "pci_address", "simulated"),
        ),
        "utilization": _gauge(
            "towerbox_gpu_utilization_ratio",
            "Share of time an engine was busy: per MIG instance (scope mig) where the "
            'driver reports it so, else the whole GPU (scope gpu, instance "")',
            ("gpu", "instance", "scope"),
        ),
        "memory_used": _gauge(
            "towerbox_gpu_memory_used_bytes",
            'Memory in use (instance "": the whole GPU)',
            gpu_instance,
        ),
        "memory_total": _gauge(
            "towerbox_gpu_memory_total_bytes",
            'Memory there is (instance "": the whole GPU)',
            gpu_instance,
        ),
        "power": _gauge("towerbox_gpu_power_watts", "Power the board draws", ("gpu",)),
        "temperature": _gauge(
            "towerbox_gpu_temperature_celsius", "Temperature of the GPU die", ("gpu",)
        ),
        "ecc": _counter(
            "towerbox_gpu_ecc_errors",
            "Memory ECC errors since the driver loaded (kind: corrected, uncorrected)",
            ("gpu", "kind"),
        ),
        "mig_info": _gauge(
            "towerbox_mig_instance_info",
            "1 per MIG instance on the GPU, with its owner and role from the committed layout",
            ("gpu", "instance", "profile", "owner", "role"),
        ),
        "drift": _gauge(
            "towerbox_gpu_layout_drift",
            "Instances where the GPU differs from its committed layout (0: none)",
            ("gpu",),
        ),
        "missing": _gauge(
            "towerbox_mig_instances_missing",
            "Instances of the committed layout the GPU does not have",
            ("gpu",),
        ),
    }


def _vnet_families() -> dict[str, Family]:
    return {
        "rx_bytes": _counter(
            "towerbox_vnet_receive_bytes", "Bytes its N6 interfaces received", _VNET
        ),
        "tx_bytes": _counter("towerbox_vnet_transmit_bytes", "Bytes its N6 interfaces sent", _VNET),
        "rx_packets": _counter(
            "towerbox_vnet_receive_packets", "Packets its N6 interfaces received", _VNET
        ),
        "tx_packets": _counter(
            "towerbox_vnet_transmit_packets", "Packets its N6 interfaces sent", _VNET
        ),
        "attached": _gauge("towerbox_vnet_attached_vms", "VMs with a NIC on the VNet", _VNET),
    }
