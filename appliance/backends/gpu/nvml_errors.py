"""NVML errors become TowerboxErrors here, with the codes the simulator uses.

NVML reports a return code (``NVMLError.value``); which refusal it means depends on
the call, so a caller passes the codes its call gives a meaning to (``NOT_FOUND``
from a GPU-instance lookup is ``mig_instance_not_found``, from a UUID lookup
``gpu_not_found``). The table below covers the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from towerbox_core.errors import (
    BackendError,
    BackendUnavailable,
    Conflict,
    InsufficientResources,
    InvalidInput,
    NotFound,
    TowerboxError,
)

Meaning = tuple[type[TowerboxError], str]

# Keyed by the pynvml constant name, resolved against the loaded module.
DEFAULT_MEANINGS: Mapping[str, Meaning] = {
    "NVML_ERROR_UNINITIALIZED": (BackendUnavailable, "nvml_unavailable"),
    "NVML_ERROR_DRIVER_NOT_LOADED": (BackendUnavailable, "nvml_unavailable"),
    "NVML_ERROR_LIBRARY_NOT_FOUND": (BackendUnavailable, "nvml_unavailable"),
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": (BackendUnavailable, "nvml_unavailable"),
    "NVML_ERROR_GPU_IS_LOST": (BackendUnavailable, "gpu_lost"),
    "NVML_ERROR_FUNCTION_NOT_FOUND": (BackendError, "nvml_driver_too_old"),
    "NVML_ERROR_NO_PERMISSION": (BackendError, "nvml_no_permission"),
    "NVML_ERROR_NOT_SUPPORTED": (Conflict, "mig_not_supported"),
    "NVML_ERROR_IN_USE": (Conflict, "mig_instance_in_use"),
    "NVML_ERROR_INSUFFICIENT_RESOURCES": (InsufficientResources, "mig_slot_occupied"),
    "NVML_ERROR_RESET_REQUIRED": (Conflict, "gpu_reset_required"),
    "NVML_ERROR_NOT_FOUND": (NotFound, "nvml_not_found"),
    "NVML_ERROR_INVALID_ARGUMENT": (BackendError, "nvml_invalid_argument"),
    "NVML_ERROR_TIMEOUT": (BackendUnavailable, "nvml_timeout"),
}

# Meanings a call passes for the return codes it gives a sense to.
GPU_LOOKUP: Mapping[str, Meaning] = {
    "NVML_ERROR_NOT_FOUND": (NotFound, "gpu_not_found"),
    "NVML_ERROR_INVALID_ARGUMENT": (NotFound, "gpu_not_found"),
}
INSTANCE_LOOKUP: Mapping[str, Meaning] = {
    "NVML_ERROR_NOT_FOUND": (NotFound, "mig_instance_not_found"),
    "NVML_ERROR_INVALID_ARGUMENT": (NotFound, "mig_instance_not_found"),
}
PLACEMENT: Mapping[str, Meaning] = {
    "NVML_ERROR_INVALID_ARGUMENT": (InvalidInput, "invalid_mig_placement"),
}


def error_name(nvml: Any, err: BaseException) -> str | None:
    """The pynvml constant name of err's return code ("NVML_ERROR_IN_USE")."""
    value = getattr(err, "value", None)
    for name in (*DEFAULT_MEANINGS, "NVML_ERROR_NO_DATA"):
        if getattr(nvml, name, object()) == value:
            return name
    return None


def map_nvml_error(
    nvml: Any,
    err: BaseException,
    action: str,
    meanings: Mapping[str, Meaning] | None = None,
    **extra: object,
) -> TowerboxError:
    """The TowerboxError for an NVMLError raised while doing action; raise it ``from err``."""
    name = error_name(nvml, err)
    table = {**DEFAULT_MEANINGS, **(meanings or {})}
    cls, code = table.get(name or "", (BackendError, "nvml_error"))
    return cls(
        f"{action}: {err}",
        code=code,
        nvml_error=name or str(getattr(err, "value", "unknown")),
        **extra,
    )
