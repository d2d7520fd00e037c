"""The registry's blob routes: content-addressed files it serves to enrolled agents.

A blob is named by the SHA-256 of its bytes. Operators upload and remove them
(``/api/v1/blobs``); an agent reads one by hash on ``/api/v1/sync/blobs/{sha256}``
with HTTP Range, so a node's resumable artifact fetch works through it.
"""

from __future__ import annotations

import re

import msgspec

SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
# A catalog artifact served by the fleet registry: url = "registry:<sha256>".
REGISTRY_SCHEME = "registry:"


class BlobInfo(msgspec.Struct, frozen=True):
    sha256: str
    size: int
    name: str  # what the operator called it (informational; the hash is the address)
    uploaded_by: str
    created_at: str


class BlobList(msgspec.Struct, frozen=True):
    blobs: list[BlobInfo]
    total_bytes: int
