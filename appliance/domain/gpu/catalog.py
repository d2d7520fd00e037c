"""The GPU catalog: which boards Towerbox knows and how MIG can split each of them.

The table is data (``catalog.toml`` next to this module). It is decoded once into
frozen structs, checked for consistency (a start slot past the end of the board, a
profile name that disagrees with its slices, two models claiming one PCI id...), and
only then handed inward. The simulator, the layout checks and the planner all read
the same table; the NVML backend uses it to name what the driver reports.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

from towerbox_core.errors import ConfigError, InvalidInput

SCHEMA_VERSION = 1
_PCI_ID_RE = re.compile(r"^0x[0-9a-f]{4}\Z")
_MODEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*\Z")
_NVIDIA_PREFIX = "NVIDIA "

Media = Literal["", "me", "gfx"]


class MigProfile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One GPU-instance profile of one board, as NVIDIA's MIG tables list it."""

    name: str
    # The profile ID `nvidia-smi mig -lgip` prints (19 for 1g.10gb on an H100). NVML
    # returns it as nvmlGpuInstanceProfileInfo_t.id; the create and placement calls
    # take this number.
    smi_id: int
    # The NVML_GPU_INSTANCE_PROFILE_* index (0 = 1_SLICE ... 9 = 1_SLICE_REV2) that
    # nvmlDeviceGetGpuInstanceProfileInfo takes. Not the same numbering as smi_id.
    nvml_profile: int
    compute_slices: int
    memory_slices: int
    memory_gb: int
    starts: tuple[int, ...]
    size: int
    max_count: int
    media: Media = ""

    def slots(self, start: int) -> range:
        """The memory slots an instance of this profile covers when placed at start."""
        return range(start, start + self.size)


class GpuModel(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    display_name: str
    pci_device_ids: tuple[str, ...]
    nvml_names: tuple[str, ...]
    memory_gb: int
    mig_supported: bool
    memory_slots: int = 0
    compute_slices: int = 0
    media_extended_max: int = 0
    profiles: tuple[MigProfile, ...] = ()
    # Filled from the table key by the loader, not written in the file.
    key: str = ""

    def profile(self, name: str) -> MigProfile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        known = self.profile_names()
        raise InvalidInput(
            f"unknown MIG profile {name!r} for {self.display_name}; "
            f"known: {', '.join(known) or 'none (no MIG on this board)'}",
            code="unknown_mig_profile",
            profile=name,
            gpu_model=self.key,
            known=list(known),
        )

    def profile_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.profiles)

    def profile_by_smi_id(self, smi_id: int) -> MigProfile | None:
        for profile in self.profiles:
            if profile.smi_id == smi_id:
                return profile
        return None


class _CatalogFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    schema: int
    models: dict[str, GpuModel]


class GpuCatalog:
    """The loaded, checked table; look models up by key, NVML name or PCI id."""

    def __init__(self, models: Mapping[str, GpuModel]) -> None:
        self._models = dict(models)
        self._by_name = {
            _name_key(name): model for model in self._models.values() for name in model.nvml_names
        }
        self._by_pci = {
            int(pci, 16): model for model in self._models.values() for pci in model.pci_device_ids
        }

    @property
    def models(self) -> Mapping[str, GpuModel]:
        return self._models

    def model(self, key: str) -> GpuModel:
        try:
            return self._models[key]
        except KeyError:
            raise InvalidInput(
                f"unknown GPU model {key!r}; known: {', '.join(sorted(self._models))}",
                code="unknown_gpu_model",
                gpu_model=key,
                known=sorted(self._models),
            ) from None

    def match(
        self, *, name: str | None = None, pci_device_id: int | None = None
    ) -> GpuModel | None:
        """The model NVML describes by name or PCI device id (device part, 16 bits).

        The name wins: one PCI id can cover boards NVIDIA names apart. A full
        pciDeviceId (device << 16 | vendor) is accepted as well.
        """
        if name is not None:
            found = self._by_name.get(_name_key(name))
            if found is not None:
                return found
        if pci_device_id is not None:
            device = pci_device_id >> 16 if pci_device_id > 0xFFFF else pci_device_id
            return self._by_pci.get(device)
        return None


def _name_key(name: str) -> str:
    name = name.strip()
    if name.startswith(_NVIDIA_PREFIX):
        name = name[len(_NVIDIA_PREFIX) :]
    return name.casefold()


def _fail(message: str, **extra: object) -> ConfigError:
    return ConfigError(f"GPU catalog: {message}", code="invalid_gpu_catalog", **extra)


def _check_profile(model: GpuModel, profile: MigProfile) -> None:
    where = f"{model.key} {profile.name}"
    suffix = f"+{profile.media}" if profile.media else ""
    expected = f"{profile.compute_slices}g.{profile.memory_gb}gb{suffix}"
    if profile.name != expected:
        raise _fail(f"{where}: name disagrees with its slices and memory ({expected})")
    if not 0 < profile.compute_slices <= model.compute_slices:
        raise _fail(f"{where}: compute_slices must be 1..{model.compute_slices}")
    if profile.size != profile.memory_slices or not 0 < profile.size <= model.memory_slots:
        raise _fail(f"{where}: size must equal memory_slices and fit {model.memory_slots} slots")
    if not profile.starts or list(profile.starts) != sorted(set(profile.starts)):
        raise _fail(f"{where}: starts must be a non-empty, sorted list without repeats")
    for start in profile.starts:
        if start < 0 or start + profile.size > model.memory_slots:
            raise _fail(
                f"{where}: start {start} + size {profile.size} runs past "
                f"{model.memory_slots} memory slots"
            )
    if not 0 < profile.max_count <= len(profile.starts):
        raise _fail(f"{where}: max_count must be 1..{len(profile.starts)} (its start slots)")
    if profile.max_count * profile.size > model.memory_slots:
        raise _fail(f"{where}: {profile.max_count} instances cannot fit the memory slots")
    if profile.max_count * profile.compute_slices > model.compute_slices:
        raise _fail(f"{where}: {profile.max_count} instances exceed the compute slices")
    if profile.media and model.media_extended_max < 1:
        raise _fail(f"{where}: media profile on a model with media_extended_max = 0")


def _check_model(key: str, model: GpuModel) -> None:
    if not _MODEL_KEY_RE.match(key):
        raise _fail(f"model key {key!r} must be letters, digits and '-'")
    if not model.nvml_names:
        raise _fail(f"{key}: nvml_names is empty")
    for pci in model.pci_device_ids:
        if not _PCI_ID_RE.match(pci):
            raise _fail(f"{key}: PCI device id {pci!r} is not like 0x2330")
    if not model.mig_supported:
        if model.profiles or model.memory_slots or model.compute_slices:
            raise _fail(f"{key}: a board without MIG has no slots, slices or profiles")
        return
    if model.memory_slots <= 0 or model.compute_slices <= 0 or not model.profiles:
        raise _fail(f"{key}: a MIG board needs memory_slots, compute_slices and profiles")
    for field in ("name", "smi_id", "nvml_profile"):
        values = [getattr(p, field) for p in model.profiles]
        if len(values) != len(set(values)):
            raise _fail(f"{key}: profile {field} values repeat")
    for profile in model.profiles:
        _check_profile(model, profile)


def _check_unique(models: Iterable[GpuModel]) -> None:
    seen_names: dict[str, str] = {}
    seen_pci: dict[str, str] = {}
    for model in models:
        for name in model.nvml_names:
            other = seen_names.setdefault(_name_key(name), model.key)
            if other != model.key:
                raise _fail(f"NVML name {name!r} claimed by {other} and {model.key}")
        for pci in model.pci_device_ids:
            other = seen_pci.setdefault(pci, model.key)
            if other != model.key:
                raise _fail(f"PCI id {pci} claimed by {other} and {model.key}")


def parse_catalog(text: str | bytes) -> GpuCatalog:
    """Decode and check catalog TOML; a bad table raises ConfigError."""
    try:
        raw = msgspec.toml.decode(text, type=_CatalogFile)
    except msgspec.DecodeError as err:  # ValidationError is a DecodeError
        raise _fail(str(err)) from err
    if raw.schema != SCHEMA_VERSION:
        raise _fail(f"schema {raw.schema} is not {SCHEMA_VERSION}")
    for key, model in raw.models.items():
        if model.key:
            raise _fail(f"{key}: 'key' comes from the table name and is not written")
    models = {key: msgspec.structs.replace(model, key=key) for key, model in raw.models.items()}
    for key, model in models.items():
        _check_model(key, model)
    _check_unique(models.values())
    return GpuCatalog(models)


def load_catalog(path: Path | None = None) -> GpuCatalog:
    """Load a catalog file; without a path, the one shipped with Towerbox."""
    if path is None:
        text = resources.files("appliance.domain.gpu").joinpath("catalog.toml").read_bytes()
    else:
        try:
            text = path.read_bytes()
        except OSError as err:
            raise _fail(f"cannot read {path}: {err.strerror}", path=str(path)) from err
    return parse_catalog(text)


@functools.cache
def default_catalog() -> GpuCatalog:
    """The shipped catalog, loaded once per process."""
    return load_catalog()
