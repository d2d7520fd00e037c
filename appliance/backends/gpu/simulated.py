"""An in-memory twin of NVML's MIG calls, built from the GPU catalog.

It refuses what the hardware refuses, with the codes the NVML backend uses, so the
planner, the service and the UI can be developed and demonstrated without a GPU.
What only a test needs is here too and nowhere in the protocol: marking a workload
on an instance (``attach_workload``), resetting a GPU so that a pending MIG mode
takes effect (``simulate_gpu_reset``; the real backend never resets), making the
next call of an operation fail (``fail_next``), and a clock of the test's own
(``use_clock``) for the energy counter. Given a path, the state is saved to
JSON after every change, so a demo node keeps its layout across a daemon restart.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from appliance.backends.gpu.protocol import (
    TIMES,
    GpuInfo,
    GpuInstanceInfo,
    GpuTelemetry,
    InstanceTelemetry,
    MigMode,
    ProfileInfo,
)
from appliance.backends.gpu.refusals import creation_refusal
from appliance.backends.gpu.sim_state import (
    STATE_VERSION,
    SimGpu,
    SimInstance,
    SimState,
    load_state,
    reset_gpu,
    save_state,
)
from appliance.domain.gpu.catalog import GpuCatalog, GpuModel, MigProfile, default_catalog
from towerbox_core.errors import Conflict, NotFound, TowerboxError

log = logging.getLogger(__name__)

OPERATIONS = frozenset(
    {
        "list_gpus",
        "profiles",
        "instances",
        "create_instance",
        "destroy_instance",
        "set_mig_mode",
        "telemetry",
    }
)
# A driver of the H100/H200 era, marked so that a fleet's version table never counts a
# simulated node as one running this NVIDIA release.
SIMULATED_DRIVER_VERSION = "550.90.07-simulated"
_NAMESPACE = uuidlib.UUID("5d3b1c1e-7a4f-4f0e-9c55-6f1e0b7d2a10")
_IDLE_W = 70.0
_BUSY_W_PER_SLICE = 35.0
# A die at a cool room's air with the fans it has: warmer by this per watt drawn.
_AMBIENT_C = 28.0
_C_PER_W = 0.13


class SimulatedGpuBackend:
    def __init__(
        self,
        models: Sequence[str] = ("H100-80GB",),
        *,
        catalog: GpuCatalog | None = None,
        state_path: Path | None = None,
        mig_enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog or default_catalog()
        self._path = state_path
        self._clock = clock
        self._lock = threading.RLock()
        self._faults: dict[str, TowerboxError] = {}
        self._last_sample: dict[str, float] = {}
        if state_path is not None and state_path.exists():
            self._state = load_state(state_path, self._catalog)
            log.info("simulated GPUs restored", extra={"path": str(state_path)})
            return
        gpus = []
        for index, key in enumerate(models):
            model = self._catalog.model(key)
            on = mig_enabled and model.mig_supported
            gpu_uuid = f"GPU-{uuidlib.uuid5(_NAMESPACE, f'{index}:{key}')}"
            gpus.append(SimGpu(index, gpu_uuid, key, mig_current=on, mig_pending=on))
        self._state = SimState(version=STATE_VERSION, gpus=gpus)
        self._save()

    def _save(self) -> None:
        if self._path is not None:
            save_state(self._path, self._state)

    # -- test hooks --------------------------------------------------------------

    def fail_next(self, op_name: str, error: TowerboxError) -> None:
        """Make the next call of op_name raise error (once)."""
        if op_name not in OPERATIONS:
            raise ValueError(f"unknown operation {op_name!r}; one of {sorted(OPERATIONS)}")
        with self._lock:
            self._faults[op_name] = error

    def _fault(self, op_name: str) -> None:
        error = self._faults.pop(op_name, None)
        if error is not None:
            raise error

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Read time (seconds) from clock from now on: a test drives the energy counter
        with the journal's scripted clock. Energy counts again from the next sample."""
        with self._lock:
            self._last_sample.clear()
            self._clock = clock

    def attach_workload(self, gpu: str, instance_id: int, workload: str) -> None:
        with self._lock:
            inst = self._instance(self._gpu(gpu), instance_id)
            if inst.workload not in (None, workload):
                raise Conflict(
                    f"GPU instance {instance_id} is in use by {inst.workload}",
                    code="mig_instance_in_use",
                    gpu=gpu,
                    instance_id=instance_id,
                )
            inst.workload = workload
            self._save()

    def detach_workload(self, gpu: str, instance_id: int) -> None:
        with self._lock:
            self._instance(self._gpu(gpu), instance_id).workload = None
            self._save()

    def simulate_gpu_reset(self, gpu: str) -> MigMode:
        """What a GPU reset does: the pending MIG mode takes effect, instances are gone."""
        with self._lock:
            state = self._gpu(gpu)
            busy = [i.gpu_instance_id for i in state.instances if i.workload]
            if busy:
                raise Conflict(
                    f"GPU {gpu} cannot be reset: instances {busy} are in use",
                    code="mig_instance_in_use",
                    gpu=gpu,
                )
            reset_gpu(state)
            self._save()
            return MigMode(state.mig_current, state.mig_pending)

    # -- lookups -----------------------------------------------------------------

    def _gpu(self, gpu: str) -> SimGpu:
        for state in self._state.gpus:
            if state.uuid == gpu:
                return state
        raise NotFound(f"no GPU {gpu}", code="gpu_not_found", gpu=gpu)

    def _model(self, state: SimGpu) -> GpuModel:
        return self._catalog.model(state.model)

    def _instance(self, state: SimGpu, instance_id: int) -> SimInstance:
        for inst in state.instances:
            if inst.gpu_instance_id == instance_id:
                return inst
        raise NotFound(
            f"GPU {state.uuid} has no GPU instance {instance_id}",
            code="mig_instance_not_found",
            gpu=state.uuid,
            instance_id=instance_id,
        )

    def _require_mig(self, state: SimGpu) -> GpuModel:
        model = self._model(state)
        if not model.mig_supported:
            raise Conflict(
                f"{model.display_name} does not support MIG",
                code="mig_not_supported",
                gpu=state.uuid,
            )
        if not state.mig_current:
            raise Conflict(
                f"MIG mode is off on GPU {state.uuid}"
                + (" (on after the next GPU reset)" if state.mig_pending else ""),
                code="mig_disabled",
                gpu=state.uuid,
            )
        return model

    def _info(self, state: SimGpu, inst: SimInstance) -> GpuInstanceInfo:
        profile = self._model(state).profile(inst.profile)
        return GpuInstanceInfo(
            gpu_instance_id=inst.gpu_instance_id,
            profile=profile.name,
            profile_id=profile.smi_id,
            start=inst.start,
            size=profile.size,
            compute_instance_ids=tuple(inst.compute_instance_ids),
            mig_uuid=inst.mig_uuid,
        )

    # -- GpuBackend ----------------------------------------------------------------

    @property
    def simulated(self) -> bool:
        return True

    def driver_version(self) -> str:
        return SIMULATED_DRIVER_VERSION

    def describe(self) -> str:
        with self._lock:
            counts = Counter(self._model(g).display_name for g in self._state.gpus)
        return "simulated " + ", ".join(f"{name} {TIMES}{n}" for name, n in counts.items())

    def list_gpus(self) -> list[GpuInfo]:
        with self._lock:
            self._fault("list_gpus")
            return [
                GpuInfo(
                    index=g.index,
                    uuid=g.uuid,
                    name=self._model(g).nvml_names[0],
                    model=g.model,
                    pci_address=f"0000:{0x17 + 0x10 * g.index:02x}:00.0",
                    numa_node=0,
                    memory_mib=self._model(g).memory_gb * 1024,
                    mig_supported=self._model(g).mig_supported,
                    mig=MigMode(g.mig_current, g.mig_pending),
                )
                for g in self._state.gpus
            ]

    def profiles(self, gpu: str) -> list[ProfileInfo]:
        with self._lock:
            self._fault("profiles")
            state = self._gpu(gpu)
            model = self._model(state)
            existing = [(model.profile(i.profile), i.start) for i in state.instances]
            found = []
            for profile in model.profiles:
                found.append(
                    ProfileInfo(
                        name=profile.name,
                        profile_id=profile.smi_id,
                        compute_slices=profile.compute_slices,
                        memory_mib=profile.memory_gb * 1024,
                        size=profile.size,
                        starts=profile.starts,
                        max_count=profile.max_count,
                        remaining=_remaining(model, existing, profile) if state.mig_current else 0,
                    )
                )
            return found

    def instances(self, gpu: str) -> list[GpuInstanceInfo]:
        with self._lock:
            self._fault("instances")
            state = self._gpu(gpu)
            ordered = sorted(state.instances, key=lambda i: i.gpu_instance_id)
            return [self._info(state, inst) for inst in ordered]

    def create_instance(self, gpu: str, profile: str, start: int) -> GpuInstanceInfo:
        with self._lock:
            self._fault("create_instance")
            state = self._gpu(gpu)
            model = self._require_mig(state)
            wanted = model.profile(profile)
            existing = [(model.profile(i.profile), i.start) for i in state.instances]
            refusal = creation_refusal(model, existing, wanted, start)
            if refusal is not None:
                refusal.extra["gpu"] = gpu
                raise refusal
            taken = {i.gpu_instance_id for i in state.instances}
            gi_id = min(set(range(1, len(taken) + 2)) - taken)
            self._state.created += 1
            mig_uuid = uuidlib.uuid5(_NAMESPACE, f"{gpu}:{gi_id}:{self._state.created}")
            inst = SimInstance(gi_id, wanted.name, start, f"MIG-{mig_uuid}")
            state.instances.append(inst)
            self._save()
            log.info(
                "MIG instance created",
                extra={"gpu": gpu, "gpu_instance": gi_id, "profile": profile, "start": start},
            )
            return self._info(state, inst)

    def destroy_instance(self, gpu: str, instance_id: int) -> None:
        with self._lock:
            self._fault("destroy_instance")
            state = self._gpu(gpu)
            self._require_mig(state)
            inst = self._instance(state, instance_id)
            if inst.workload is not None:
                raise Conflict(
                    f"GPU instance {instance_id} ({inst.profile} at slot {inst.start}) "
                    f"is in use by {inst.workload}",
                    code="mig_instance_in_use",
                    gpu=gpu,
                    instance_id=instance_id,
                    workload=inst.workload,
                )
            state.instances.remove(inst)
            self._save()
            log.info("MIG instance destroyed", extra={"gpu": gpu, "gpu_instance": instance_id})

    def set_mig_mode(self, gpu: str, enabled: bool) -> MigMode:
        with self._lock:
            self._fault("set_mig_mode")
            state = self._gpu(gpu)
            model = self._model(state)
            if not model.mig_supported:
                raise Conflict(
                    f"{model.display_name} does not support MIG",
                    code="mig_not_supported",
                    gpu=gpu,
                )
            if not enabled and state.instances:
                raise Conflict(
                    f"MIG cannot be turned off on GPU {gpu}: destroy its "
                    f"{len(state.instances)} instance(s) first",
                    code="mig_instance_in_use",
                    gpu=gpu,
                )
            state.mig_pending = enabled
            self._save()
            return MigMode(state.mig_current, state.mig_pending)

    def telemetry(self, gpu: str) -> GpuTelemetry:
        with self._lock:
            self._fault("telemetry")
            state = self._gpu(gpu)
            model = self._model(state)
            busy_slices = sum(
                model.profile(i.profile).compute_slices for i in state.instances if i.workload
            )
            power = _IDLE_W + _BUSY_W_PER_SLICE * busy_slices
            now = self._clock()
            last = self._last_sample.get(gpu, now)
            self._last_sample[gpu] = now
            state.energy_j += power * (now - last)
            per_instance = []
            for inst in sorted(state.instances, key=lambda i: i.gpu_instance_id):
                profile = model.profile(inst.profile)
                used = profile.memory_gb * 512 if inst.workload else 0
                util = 60.0 if inst.workload else 0.0
                total = profile.memory_gb * 1024
                per_instance.append(InstanceTelemetry(inst.gpu_instance_id, used, util, total))
            # The simulated board reports utilization per MIG instance (as DCGM does) and
            # ECC memory that never fails.
            return GpuTelemetry(
                power_w=power,
                energy_j=state.energy_j,
                utilization_pct=None if state.mig_current else 0.0,
                memory_used_mib=sum(t.memory_used_mib or 0 for t in per_instance),
                instances=tuple(per_instance),
                memory_total_mib=model.memory_gb * 1024,
                temperature_c=round(_AMBIENT_C + _C_PER_W * power, 1),
                ecc_corrected=0,
                ecc_uncorrected=0,
                mig_enabled=state.mig_current,
            )

    def close(self) -> None:
        with self._lock:
            self._save()


def _remaining(model: GpuModel, existing: list[tuple[MigProfile, int]], profile: MigProfile) -> int:
    """How many more of profile fit beside existing, placed at the lowest free starts."""
    placed = list(existing)
    for start in profile.starts:
        if creation_refusal(model, placed, profile, start) is None:
            placed.append((profile, start))
    return len(placed) - len(existing)
