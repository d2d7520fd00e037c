"""Run layouts and plans against the simulator, as the GPU service will."""

from __future__ import annotations

from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.domain.gpu.layout import Layout
from appliance.domain.gpu.planner import OpKind, Plan


def ids_by_placement(sim: SimulatedGpuBackend, gpu: str) -> dict[tuple[str, int], int]:
    return {(i.profile, i.start): i.gpu_instance_id for i in sim.instances(gpu)}


def build(sim: SimulatedGpuBackend, gpu: str, layout: Layout) -> dict[tuple[str, int], int]:
    """Create the layout's instances and mark a workload on each owned one."""
    for inst in layout.instances:
        made = sim.create_instance(gpu, inst.profile, inst.start)
        if inst.owner is not None:
            sim.attach_workload(gpu, made.gpu_instance_id, inst.owner)
    return ids_by_placement(sim, gpu)


def apply_plan(sim: SimulatedGpuBackend, gpu: str, plan: Plan) -> None:
    """Drain, then run the ops in order (what the service does, minus rollback)."""
    ids = ids_by_placement(sim, gpu)
    for inst in plan.drain:
        sim.detach_workload(gpu, ids[inst.placement])
    for op in plan.ops:
        if op.kind is OpKind.DESTROY:
            sim.destroy_instance(gpu, ids_by_placement(sim, gpu)[op.instance.placement])
        else:
            sim.create_instance(gpu, op.instance.profile, op.instance.start)
