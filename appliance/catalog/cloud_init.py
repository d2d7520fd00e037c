"""Cloud-init user-data from an entry's template, and the checks a template must pass."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import Path

from appliance.catalog.model import CatalogEntry
from appliance.catalog.values import Value
from towerbox_core.errors import ConfigError, InvalidInput

INVALID_ENTRY = "invalid_catalog_entry"
# Cloud-init templates live beside the catalog folder unless told otherwise.
CLOUD_INIT_DIRNAME = "cloud-init"

# A rendered value sits inside a double-quoted YAML scalar: no line breaks, quotes
# or backslashes that could end it and smuggle in keys of their own.
_UNSAFE_TEMPLATE_VALUE_RE = re.compile(r'[\x00-\x1f\x7f"\\]')


def cloud_init_dir(catalog_dir: Path) -> Path:
    return catalog_dir.parent / CLOUD_INIT_DIRNAME


def render_cloud_init(
    entry: CatalogEntry, templates_dir: Path, values: Mapping[str, Value]
) -> str | None:
    """The entry's cloud-init user-data with ``$name`` placeholders filled, or None.

    Strings go in as they are (templates put them inside double quotes), integers
    and booleans as YAML scalars, lists as a flow sequence of quoted strings.
    """
    if entry.cloud_init_template is None:
        return None
    path = templates_dir / entry.cloud_init_template
    template = _read_template(path, entry.name)
    texts: dict[str, str] = {}
    for key, value in values.items():
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, str) and _UNSAFE_TEMPLATE_VALUE_RE.search(item):
                raise InvalidInput(
                    f"cloud-init value {key!r} may not hold line breaks, control characters, "
                    "'\"' or '\\'",
                    code="invalid_cloud_init_value",
                    field=key,
                )
        texts[key] = _as_yaml(value)
    try:
        return template.substitute(texts)
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


def _as_yaml(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{item}"' for item in value) + "]"
    return value


def template_placeholders(path: Path) -> set[str]:
    """The ``$name`` placeholders a (checked) template uses."""
    return set(string.Template(path.read_text(encoding="utf-8")).get_identifiers())


def _read_template(path: Path, appliance: str) -> string.Template:
    try:
        return string.Template(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"cloud-init template {path} of appliance {appliance!r} cannot be read: "
            f"{read_error_reason(err)}",
            code="cloud_init_template_missing",
            path=str(path),
        ) from err


def check_template(path: Path) -> None:
    try:
        template = string.Template(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(
            f"cloud-init template {path} cannot be read: {read_error_reason(err)}",
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


def read_error_reason(err: OSError | UnicodeDecodeError) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)
