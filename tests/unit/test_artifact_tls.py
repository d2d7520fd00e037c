"""Which CAs an https artifact source is verified against."""

from __future__ import annotations

from pathlib import Path

import certifi
import pytest

from appliance.backends.artifacts.http_source import tls_context
from tests.support.tls import self_signed


def _ca_count(monkeypatch: pytest.MonkeyPatch, cafile: Path, cadir: Path) -> int:
    monkeypatch.setenv("SSL_CERT_FILE", str(cafile))
    monkeypatch.setenv("SSL_CERT_DIR", str(cadir))
    return int(tls_context().cert_store_stats()["x509_ca"])


def test_a_node_without_a_ca_store_falls_back_to_certifis_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    (tmp_path / "certs").mkdir()
    bundled = sum(1 for line in Path(certifi.where()).read_text().splitlines() if "BEGIN" in line)
    assert _ca_count(monkeypatch, empty, tmp_path / "certs") == bundled


def test_an_operators_own_bundle_is_used_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, _ = self_signed(tmp_path)
    (tmp_path / "certs").mkdir()
    assert _ca_count(monkeypatch, cert, tmp_path / "certs") == 1
