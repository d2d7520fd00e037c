"""NoCloud seed images: an ISO 9660 volume labelled ``cidata``, written with pycdlib.

cloud-init finds the volume by its label and reads ``meta-data``, ``user-data`` and
``network-config`` from its root. The files carry Rock Ridge and Joliet names, so
Linux's isofs shows them with their real (lower-case, dashed) names; the plain ISO
9660 names are the 8.3 upper-case spellings every reader understands.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from towerbox_core.errors import BackendError, StorageFull, is_disk_full

log = logging.getLogger(__name__)

VOLUME_LABEL = "cidata"
# Real name -> ISO 9660 level-1 name (8.3, upper case, ";1" version).
_ISO_NAMES = {
    "meta-data": "/METADATA.;1",
    "user-data": "/USERDATA.;1",
    "network-config": "/NETWORKC.;1",
}


@dataclass(frozen=True)
class SeedFiles:
    meta_data: str
    user_data: str
    network_config: str

    def by_name(self) -> dict[str, bytes]:
        return {
            "meta-data": self.meta_data.encode(),
            "user-data": self.user_data.encode(),
            "network-config": self.network_config.encode(),
        }


def write_seed_iso(path: Path, files: SeedFiles) -> None:
    """Write the seed to ``path`` (mode 0600), atomically: a failure leaves no file.

    The user-data may hold secrets, so the file is readable by its owner only;
    libvirt hands it to QEMU's user while the VM runs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    iso = pycdlib.PyCdlib()
    try:
        iso.new(interchange_level=1, vol_ident=VOLUME_LABEL, joliet=3, rock_ridge="1.09")
        for name, data in files.by_name().items():
            iso.add_fp(
                io.BytesIO(data),
                len(data),
                _ISO_NAMES[name],
                rr_name=name,
                joliet_path=f"/{name}",
            )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            iso.write_fp(out)
        os.replace(tmp, path)
    except (PyCdlibException, OSError) as err:
        tmp.unlink(missing_ok=True)
        if is_disk_full(err):
            raise StorageFull(
                f"cannot write the cloud-init seed {path}: no space left on its disk; free "
                "space there and retry",
                path=str(path),
            ) from err
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise BackendError(
            f"cannot write the cloud-init seed {path}: {reason}",
            code="seed_build_failed",
            path=str(path),
        ) from err
    finally:
        iso.close()
    log.info("cloud-init seed %s", path)


def read_seed_iso(path: Path) -> dict[str, bytes]:
    """The files of a seed by their Rock Ridge names, and its label under ``""``."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        found: dict[str, bytes] = {"": iso.pvd.volume_identifier.rstrip(b" ")}
        for name in _ISO_NAMES:
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path=f"/{name}")
            found[name] = buf.getvalue()
        return found
    finally:
        iso.close()
