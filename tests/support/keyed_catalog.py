"""A catalog with "keyed", the demo kernel whose seed holds a secret value (``api_key``)
and a plain one (``model``), beside a copy of the product's entries and cloud-init
templates: for the tests that a secret never leaves the node's own records."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.appliance import REPO

SECRET = "hf_Zm9vYmFyYmF6cXV4c2VjcmV0"
KEYED_ENTRY = """\
name = "keyed"
description = "demo kernel with a secret in its seed"
version = "1"
role = "other"

[image]
kind = "kernel"
file = "demo-vmlinuz"
initrd = "demo-initramfs.cpio.gz"

[spec]
memory_mib = 128

[cloud_init]
template = "keyed.yaml"

[cloud_init.values.api_key]
type = "string"
secret = true
required = true
pattern = "hf_[A-Za-z0-9]{8,}"

[cloud_init.values.model]
type = "string"
default = "small"
"""


def keyed_catalog(root: Path) -> Path:
    """Write the catalog and its templates under ``root``; the catalog's folder (for
    TOWERBOX_CATALOG_DIR; the templates are found beside it)."""
    catalog = root / "catalog"
    shutil.copytree(REPO / "images" / "catalog", catalog)
    shutil.copytree(REPO / "images" / "cloud-init", root / "cloud-init")
    (catalog / "keyed.toml").write_text(KEYED_ENTRY)
    template = '#cloud-config\nkey: "$api_key"\nmodel: "$model"\n'
    (root / "cloud-init" / "keyed.yaml").write_text(template)
    return catalog
