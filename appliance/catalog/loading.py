"""Loading the catalog: each file decoded once into typed structs, then checked.

A file's default spec is proven to make a valid VmSpec at load. A broken catalog
stops the daemon at start with the file and field named, never a VM create later.
Entries the registry hands down are checked exactly like files.
"""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from appliance.catalog.cloud_init import (
    INVALID_ENTRY,
    check_template,
    cloud_init_dir,
    read_error_reason,
    template_placeholders,
)
from appliance.catalog.model import ArtifactRef, CatalogEntry, ImageRef, spec_for
from appliance.catalog.values import ValueDecl, check_declarations
from appliance.domain.vm_spec import Role, check_file_name
from towerbox_core.api.blobs import REGISTRY_SCHEME, SHA256_RE
from towerbox_core.errors import ConfigError, InvalidInput
from towerbox_core.names import check_name

log = logging.getLogger(__name__)

_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}\Z")
_MSGSPEC_PATH_RE = re.compile(r"at `\$\.([^`]+)`")
_MSGSPEC_FIELD_RE = re.compile(r"field `([^`]+)`")
# The catalog sets these itself: the name per VM, the role from the top level, the
# appliance from the entry's name.
_RESERVED_SPEC_FIELDS = ("name", "role", "appliance")
_PROBE_VM_NAME = "catalog-check"


class _CloudInitSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    template: str | None = None
    values: dict[str, ValueDecl] = {}


class _ModelSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    file: str  # in the node's image folder


class _ArtifactTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    url: str
    sha256: str
    kind: Literal["image", "kernel", "initrd", "model"]
    size: int | None = None


class _CatalogFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    description: str
    version: str
    role: Role
    image: ImageRef
    spec: dict[str, Any] = {}
    cloud_init: _CloudInitSection = _CloudInitSection()
    model: _ModelSection | None = None
    artifacts: tuple[_ArtifactTable, ...] = ()


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
        raise _entry_error(path, f"cannot be read: {read_error_reason(err)}", None) from err
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
            check_template(templates_dir / template)
    _check_values(data.cloud_init, templates_dir)
    if data.model is not None:
        check_file_name(data.model.file, "model.file")
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
        cloud_init_values=data.cloud_init.values,
        model_file=data.model.file if data.model is not None else None,
        artifacts=_check_artifacts(data.artifacts, image),
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


def _check_url(url: str, field: str, sha256: str | None) -> None:
    """An http(s) URL, or ``registry:<sha256>``: the blob the fleet registry serves,
    which must be the artifact's own hash (a blob's address is its content)."""
    if url.startswith(REGISTRY_SCHEME):
        blob = url.removeprefix(REGISTRY_SCHEME).lower()
        if not SHA256_RE.match(blob):
            raise InvalidInput(
                f"{field} {url!r}: a registry source is registry:<sha256> (64 hex digits)",
                code=INVALID_ENTRY,
                field=field,
            )
        if sha256 is not None and blob != sha256.lower():
            raise InvalidInput(
                f"{field} names registry blob {blob} but the artifact's sha256 is "
                f"{sha256.lower()}; a blob is addressed by its own hash",
                code=INVALID_ENTRY,
                field=field,
            )
        return
    parts = urlsplit(url)
    plain = url.isprintable() and " " not in url
    if parts.scheme not in ("https", "http") or not parts.netloc or not plain:
        raise InvalidInput(
            f"{field} {url!r} is not an http(s) URL or registry:<sha256>",
            code=INVALID_ENTRY,
            field=field,
        )


def _check_sha256(value: str, field: str) -> str:
    if not _SHA256_RE.match(value):
        raise InvalidInput(
            f"{field} must be 64 hexadecimal characters", code=INVALID_ENTRY, field=field
        )
    return value.lower()


def _check_artifacts(
    tables: tuple[_ArtifactTable, ...], image: ImageRef
) -> tuple[ArtifactRef, ...]:
    """``[[artifacts]]``: plain, unique names, http(s) urls, hashes; an artifact named
    like the image file must carry the image's hash."""
    seen: set[str] = set()
    result = []
    for i, table in enumerate(tables):
        field = f"artifacts[{i}]"
        check_file_name(table.name, f"{field}.name")
        if table.name in seen:
            raise InvalidInput(
                f"artifact {table.name!r} is listed twice",
                code=INVALID_ENTRY,
                field=f"{field}.name",
            )
        seen.add(table.name)
        sha256 = _check_sha256(table.sha256, f"{field}.sha256")
        _check_url(table.url, f"{field}.url", sha256)
        if table.size is not None and table.size < 0:
            raise InvalidInput(
                f"{field}.size must be 0 or more bytes", code=INVALID_ENTRY, field=f"{field}.size"
            )
        if table.name == image.file and image.sha256 not in (None, sha256):
            raise InvalidInput(
                f"artifact {table.name!r} is the image file but its sha256 differs from "
                "image.sha256",
                code=INVALID_ENTRY,
                field=f"{field}.sha256",
            )
        url = table.url.lower() if table.url.startswith(REGISTRY_SCHEME) else table.url
        result.append(
            ArtifactRef(name=table.name, url=url, sha256=sha256, kind=table.kind, size=table.size)
        )
    return tuple(result)


def _check_image(image: ImageRef) -> ImageRef:
    check_file_name(image.file, "image.file")
    if image.initrd is not None:
        if image.kind != "kernel":
            raise InvalidInput(
                "image.initrd needs image kind 'kernel'", code=INVALID_ENTRY, field="image.initrd"
            )
        check_file_name(image.initrd, "image.initrd")
    if image.sha256 is not None:
        _check_sha256(image.sha256, "image.sha256")
    if image.url is not None:
        _check_url(image.url, "image.url", image.sha256)
        if image.sha256 is None:
            raise InvalidInput(
                "an image with a url needs its sha256", code=INVALID_ENTRY, field="image.sha256"
            )
    if image.sha256 is not None:
        return msgspec.structs.replace(image, sha256=image.sha256.lower())
    return image


def _check_values(section: _CloudInitSection, templates_dir: Path | None) -> None:
    if not section.values:
        return
    if section.template is None:
        raise InvalidInput(
            "cloud_init.values need a cloud_init.template to fill",
            code=INVALID_ENTRY,
            field="cloud_init.values",
        )
    check_declarations(section.values)
    if templates_dir is None:
        return
    # A declared value the template never uses is a typo waiting to surprise someone.
    used = template_placeholders(templates_dir / section.template)
    for name in section.values:
        if name not in used:
            raise InvalidInput(
                f"value {name!r} is declared but {section.template} has no ${name}",
                code=INVALID_ENTRY,
                field=f"cloud_init.values.{name}",
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


def _msgspec_field(message: str) -> str | None:
    """The dotted field a msgspec error is about: its path, plus a named field."""
    path = _MSGSPEC_PATH_RE.search(message)
    named = _MSGSPEC_FIELD_RE.search(message)
    parts = [m.group(1) for m in (path, named) if m is not None]
    return ".".join(parts) or None


def _entry_error(path: Path, message: str, field: str | None) -> ConfigError:
    if field is None:
        return ConfigError(f"catalog file {path}: {message}", code=INVALID_ENTRY, file=str(path))
    return ConfigError(
        f"catalog file {path}: field {field}: {message}",
        code=INVALID_ENTRY,
        file=str(path),
        field=field,
    )
