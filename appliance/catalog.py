"""The appliance catalog: one TOML file per VM appliance (images/catalog/*.toml).

A file is decoded once into typed structs that refuse unknown fields, then checked;
its default spec is proven to make a valid VmSpec at load. A broken catalog stops
the daemon at start with the file and field named, never a VM create later.
The schema is documented in images/README.md.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import re
import stat
import string
import threading
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from appliance.domain.vm_spec import Role, VmSpec, check_file_name, parse_vm_spec
from towerbox_core.errors import ConfigError, InvalidInput
from towerbox_core.names import check_name

log = logging.getLogger(__name__)

INVALID_ENTRY = "invalid_catalog_entry"
# Cloud-init templates live beside the catalog folder unless told otherwise.
CLOUD_INIT_DIRNAME = "cloud-init"

_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}\Z")
_MSGSPEC_PATH_RE = re.compile(r"at `\$\.([^`]+)`")
_MSGSPEC_FIELD_RE = re.compile(r"field `([^`]+)`")
# A rendered value sits inside a double-quoted YAML scalar: no line breaks, quotes
# or backslashes that could end it and smuggle in keys of their own.
_UNSAFE_TEMPLATE_VALUE_RE = re.compile(r'[\x00-\x1f\x7f"\\]')
# The catalog sets these itself: the name per VM, the role from the top level, the
# appliance from the entry's name.
_RESERVED_SPEC_FIELDS = ("name", "role", "appliance")
_PROBE_VM_NAME = "catalog-check"
_HASH_CHUNK = 1 << 20
_HASH_CACHE_MAX = 64


class ImageRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a VM of the appliance boots from; files are in the node's image folder."""

    kind: Literal["kernel", "disk"]
    file: str  # disk: the base image; kernel: the kernel
    initrd: str | None = None  # kernel only
    url: str | None = None  # where ``file`` comes from
    sha256: str | None = None  # of ``file``; required with ``url``


class CatalogEntry(msgspec.Struct, frozen=True):
    name: str
    description: str
    version: str
    role: Role
    image: ImageRef
    default_spec: dict[str, Any]  # VmSpec fields except name, role and appliance
    cloud_init_template: str | None
    source_file: str


class _CloudInitSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    template: str | None = None


class _CatalogFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    description: str
    version: str
    role: Role
    image: ImageRef
    spec: dict[str, Any] = {}
    cloud_init: _CloudInitSection = _CloudInitSection()


def cloud_init_dir(catalog_dir: Path) -> Path:
    return catalog_dir.parent / CLOUD_INIT_DIRNAME


def load_catalog(
    catalog_dir: Path, *, templates_dir: Path | None = None
) -> dict[str, CatalogEntry]:
    """Load every ``*.toml`` in ``catalog_dir``; the first bad file raises ConfigError.

    Templates named by entries must exist in ``templates_dir`` (default: the
    ``cloud-init`` folder beside ``catalog_dir``).
    """
    if not catalog_dir.is_dir():
        raise ConfigError(
            f"catalog folder {catalog_dir} does not exist",
            code="catalog_not_found",
            path=str(catalog_dir),
        )
    templates = templates_dir if templates_dir is not None else cloud_init_dir(catalog_dir)
    entries: dict[str, CatalogEntry] = {}
    for path in sorted(catalog_dir.glob("*.toml")):
        entry = load_entry(path, templates_dir=templates)
        entries[entry.name] = entry
    log.info(
        "catalog: %d appliances from %s",
        len(entries),
        catalog_dir,
        extra={"appliances": sorted(entries)},
    )
    return entries


def load_entry(path: Path, *, templates_dir: Path | None = None) -> CatalogEntry:
    """Decode and check one catalog file; errors name the file and the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise _entry_error(path, f"cannot be read: {_reason(err)}", None) from err
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _entry_error(path, f"is not valid TOML: {err}", None) from err
    try:
        data = msgspec.convert(raw, _CatalogFile)
    except msgspec.ValidationError as err:
        raise _entry_error(path, str(err), _msgspec_field(str(err))) from err
    try:
        return _check(path, data, templates_dir)
    except InvalidInput as err:
        field = err.extra.get("field")
        raise _entry_error(path, err.message, field if isinstance(field, str) else None) from err


def entry_from_document(data: Any, templates_dir: Path | None, field: str) -> CatalogEntry:
    """One catalog entry handed down by the registry, checked exactly like a file.

    Errors are InvalidInput (the document is refused), naming ``field``.
    """
    try:
        parsed = msgspec.convert(data, _CatalogFile)
    except msgspec.ValidationError as err:
        raise InvalidInput(
            f"{field}: {err}", code=INVALID_ENTRY, field=f"{field}.{_msgspec_field(str(err))}"
        ) from err
    try:
        return _check(Path(f"central/{parsed.name}.toml"), parsed, templates_dir)
    except InvalidInput as err:
        sub = err.extra.get("field")
        raise InvalidInput(
            f"{field}: {err.message}",
            code=INVALID_ENTRY,
            field=f"{field}.{sub}" if isinstance(sub, str) else field,
        ) from err


def entry_document(entry: CatalogEntry) -> dict[str, Any]:
    """An entry as the document (or file) that describes it."""
    doc: dict[str, Any] = {
        "name": entry.name,
        "description": entry.description,
        "version": entry.version,
        "role": entry.role.value,
        "image": msgspec.to_builtins(entry.image),
        "spec": entry.default_spec,
    }
    if entry.cloud_init_template is not None:
        doc["cloud_init"] = {"template": entry.cloud_init_template}
    return doc


def spec_for(entry: CatalogEntry, name: str, overrides: dict[str, Any]) -> VmSpec:
    """The spec of a VM named ``name`` made from ``entry``, with ``overrides`` on top.

    Tables merge key by key (``{"cpu": {"isolated": false}}`` keeps the policy);
    lists and plain values replace. The image fills ``boot`` (kernel kind) or the
    first disk (disk kind, unless ``overrides`` give ``disks``). ``appliance`` and
    ``role`` come from the entry unless overridden; the name is always ``name``.
    """
    base = copy.deepcopy(entry.default_spec)
    image = entry.image
    if image.kind == "kernel":
        boot = base.get("boot")
        boot = dict(boot) if isinstance(boot, dict) else {}
        boot["kernel"] = image.file
        if image.initrd is not None:
            boot["initrd"] = image.initrd
        base["boot"] = boot
    elif "disks" not in overrides:
        extra = base.get("disks")
        base["disks"] = [{"image": image.file}, *(extra if isinstance(extra, list) else [])]
    base["appliance"] = entry.name
    base["role"] = entry.role.value
    merged = _merge(base, overrides)
    merged["name"] = name
    return parse_vm_spec(merged)


def image_status(entry: CatalogEntry, image_dir: Path) -> dict[str, Any]:
    """Whether the entry's image files are in ``image_dir`` and ``file`` has its hash.

    Hashing a large disk image takes a while the first time (the result is kept per
    file identity, size and mtime): call this from a worker thread.
    """
    names = [entry.image.file]
    if entry.image.initrd is not None:
        names.append(entry.image.initrd)
    files: dict[str, dict[str, Any]] = {}
    for file_name in names:
        try:
            st = (image_dir / file_name).stat()
        except OSError:
            files[file_name] = {"present": False, "size_bytes": None}
            continue
        regular = stat.S_ISREG(st.st_mode)
        files[file_name] = {"present": regular, "size_bytes": st.st_size if regular else None}
    present = all(f["present"] for f in files.values())
    result: dict[str, Any] = {"present": present, "files": files, "sha256_ok": None}
    if present and entry.image.sha256 is not None:
        try:
            digest = file_sha256(image_dir / entry.image.file)
        except OSError as err:
            result["error"] = f"cannot hash {entry.image.file}: {err.strerror}"
        else:
            result["sha256_ok"] = digest == entry.image.sha256.lower()
    return result


_hash_cache: dict[tuple[str, int, int, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks; unchanged files are not read again."""
    with path.open("rb") as f:
        st = os.fstat(f.fileno())
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _hash_lock:
            cached = _hash_cache.get(key)
        if cached is not None:
            return cached
        digest = hashlib.sha256()
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    with _hash_lock:
        if len(_hash_cache) >= _HASH_CACHE_MAX:
            _hash_cache.clear()
        _hash_cache[key] = hexdigest
    return hexdigest


def render_cloud_init(
    entry: CatalogEntry, templates_dir: Path, values: dict[str, str]
) -> str | None:
    """The entry's cloud-init user-data with ``$name`` placeholders filled, or None."""
    if entry.cloud_init_template is None:
        return None
    path = templates_dir / entry.cloud_init_template
    template = _read_template(path, entry.name)
    for key, value in values.items():
        if _UNSAFE_TEMPLATE_VALUE_RE.search(value):
            raise InvalidInput(
                f"cloud-init value {key!r} may not hold line breaks, control characters, "
                "'\"' or '\\'",
                code="invalid_cloud_init_value",
                field=key,
            )
    try:
        return template.substitute(values)
    except KeyError as err:
        missing = err.args[0]
        raise InvalidInput(
            f"cloud-init template {entry.cloud_init_template} of appliance {entry.name!r} "
            f"needs a value for {missing!r}",
            code="cloud_init_missing_value",
            field=str(missing),
        ) from err
    except ValueError as err:
        raise ConfigError(
            f"cloud-init template {path} has a bad placeholder: {err}",
            code="invalid_cloud_init_template",
            path=str(path),
        ) from err


def _read_template(path: Path, appliance: str) -> string.Template:
    try:
        return string.Template(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"cloud-init template {path} of appliance {appliance!r} cannot be read: {_reason(err)}",
            code="cloud_init_template_missing",
            path=str(path),
        ) from err


def _check(path: Path, data: _CatalogFile, templates_dir: Path | None) -> CatalogEntry:
    check_name("appliance", data.name, field="name")
    if data.name != path.stem:
        raise InvalidInput(
            f"name {data.name!r} does not match the file name {path.name!r}",
            code=INVALID_ENTRY,
            field="name",
        )
    if not data.version or len(data.version) > 64 or not data.version.isprintable():
        raise InvalidInput(
            "version must be 1 to 64 printable characters", code=INVALID_ENTRY, field="version"
        )
    image = _check_image(data.image)
    template = data.cloud_init.template
    if template is not None:
        check_file_name(template, "cloud_init.template")
        if templates_dir is not None:
            _check_template(templates_dir / template)
    _check_spec_table(data)
    entry = CatalogEntry(
        name=data.name,
        description=data.description,
        version=data.version,
        role=data.role,
        image=image,
        default_spec=data.spec,
        cloud_init_template=template,
        source_file=str(path),
    )
    try:
        spec_for(entry, _PROBE_VM_NAME, {})
    except InvalidInput as err:
        field = err.extra.get("field")
        if not isinstance(field, str):
            field = _msgspec_field(err.message)
        raise InvalidInput(
            err.message, code=INVALID_ENTRY, field=f"spec.{field}" if field else "spec"
        ) from err
    return entry


def _check_image(image: ImageRef) -> ImageRef:
    check_file_name(image.file, "image.file")
    if image.initrd is not None:
        if image.kind != "kernel":
            raise InvalidInput(
                "image.initrd needs image kind 'kernel'", code=INVALID_ENTRY, field="image.initrd"
            )
        check_file_name(image.initrd, "image.initrd")
    if image.sha256 is not None and not _SHA256_RE.match(image.sha256):
        raise InvalidInput(
            "image.sha256 must be 64 hexadecimal characters",
            code=INVALID_ENTRY,
            field="image.sha256",
        )
    if image.url is not None:
        parts = urlsplit(image.url)
        plain = image.url.isprintable() and " " not in image.url
        if parts.scheme not in ("https", "http") or not parts.netloc or not plain:
            raise InvalidInput(
                f"image.url {image.url!r} is not an http(s) URL",
                code=INVALID_ENTRY,
                field="image.url",
            )
        if image.sha256 is None:
            raise InvalidInput(
                "an image with a url needs its sha256", code=INVALID_ENTRY, field="image.sha256"
            )
    if image.sha256 is not None:
        return msgspec.structs.replace(image, sha256=image.sha256.lower())
    return image


def _check_template(path: Path) -> None:
    try:
        template = string.Template(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(
            f"cloud-init template {path} cannot be read: {_reason(err)}",
            code=INVALID_ENTRY,
            field="cloud_init.template",
        ) from err
    if not template.template.startswith("#cloud-config\n"):
        raise InvalidInput(
            f"cloud-init template {path} does not start with '#cloud-config'",
            code=INVALID_ENTRY,
            field="cloud_init.template",
        )
    if not template.is_valid():
        raise InvalidInput(
            f"cloud-init template {path} has a bad placeholder (write a literal '$' as '$$')",
            code=INVALID_ENTRY,
            field="cloud_init.template",
        )


def _check_spec_table(data: _CatalogFile) -> None:
    for key in _RESERVED_SPEC_FIELDS:
        if key in data.spec:
            raise InvalidInput(
                f"spec may not set {key!r}: the catalog sets it",
                code=INVALID_ENTRY,
                field=f"spec.{key}",
            )
    boot = data.spec.get("boot")
    if boot is None:
        return
    if data.image.kind != "kernel":
        raise InvalidInput(
            "spec.boot needs image kind 'kernel'", code=INVALID_ENTRY, field="spec.boot"
        )
    if isinstance(boot, dict):
        for key in ("kernel", "initrd"):
            if key in boot:
                raise InvalidInput(
                    f"spec.boot.{key} comes from the [image] table",
                    code=INVALID_ENTRY,
                    field=f"spec.boot.{key}",
                )


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = _merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _msgspec_field(message: str) -> str | None:
    """The dotted field a msgspec error is about: its path, plus a named field."""
    path = _MSGSPEC_PATH_RE.search(message)
    named = _MSGSPEC_FIELD_RE.search(message)
    parts = [m.group(1) for m in (path, named) if m is not None]
    return ".".join(parts) or None


def _reason(err: OSError | UnicodeDecodeError) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


def _entry_error(path: Path, message: str, field: str | None) -> ConfigError:
    if field is None:
        return ConfigError(f"catalog file {path}: {message}", code=INVALID_ENTRY, file=str(path))
    return ConfigError(
        f"catalog file {path}: field {field}: {message}",
        code=INVALID_ENTRY,
        file=str(path),
        field=field,
    )
