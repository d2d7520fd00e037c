"""Pick the GPU backend by probing, and say which one was picked and why.

"auto" uses NVML when it answers and falls back to the simulator otherwise (a
development machine, a demo node, CI); "nvml" insists on real GPUs; "simulated"
never touches NVML. The returned line is what the daemon logs and the UI shows:
"nvml (2 x H100 80GB)" or "simulated H100 80GB x1 (no NVIDIA driver: ...)".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from appliance.backends.gpu.nvml import NvmlGpuBackend
from appliance.backends.gpu.protocol import GpuBackend
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.domain.gpu.catalog import GpuCatalog
from towerbox_core.errors import BackendUnavailable

log = logging.getLogger(__name__)

Choice = Literal["auto", "nvml", "simulated"]


def open_gpu_backend(
    choice: Choice = "auto",
    *,
    catalog: GpuCatalog | None = None,
    simulated_models: Sequence[str] = ("H100-80GB",),
    simulated_state: Path | None = None,
    nvml: Any | None = None,
) -> tuple[GpuBackend, str]:
    """The backend and the line that names it for the operator.

    ``nvml`` replaces the pynvml module (tests); ``simulated_state`` keeps a demo
    node's layout across restarts.
    """
    reason = "chosen in the configuration"
    if choice in ("auto", "nvml"):
        missing = NvmlGpuBackend.probe(nvml)
        if missing is None:
            backend: GpuBackend = NvmlGpuBackend(catalog, nvml=nvml)
            line = backend.describe()
            log.info("GPU backend: %s", line)
            return backend, line
        if choice == "nvml":
            raise BackendUnavailable(
                f"NVML does not answer: {missing}", code="nvml_unavailable", reason=missing
            )
        reason = f"no NVIDIA driver: {missing}"
    backend = SimulatedGpuBackend(simulated_models, catalog=catalog, state_path=simulated_state)
    line = f"{backend.describe()} ({reason})"
    log.info("GPU backend: %s", line)
    return backend, line
