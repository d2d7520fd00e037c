"""Certificates made with the openssl command for servers a test runs over TLS."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def self_signed(
    folder: Path, name: str = "server", *, cn: str = "127.0.0.1", ip: str | None = "127.0.0.1"
) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA: a client trusts it by loading it), with
    ``ip`` as its subject alternative name; writes ``<name>.crt`` and ``<name>.key``
    in ``folder`` and returns (cert, key)."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    san = ["-addext", f"subjectAltName=IP:{ip}"] if ip else []
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
        *san, "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return cert, key
