"""A node configured for the real N6 backend starts when Open vSwitch does not answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.appliance import admin_password, api_client, built, login
from upf_bridge.backends import ovsdb


def test_the_daemon_starts_without_ovs_and_the_first_n6_call_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ovsdb, "VSCTL", str(tmp_path / "no-such-ovs-vsctl"))
    app = built(tmp_path, TOWERBOX_N6_BACKEND="real")
    try:
        with api_client(app) as client:
            health = client.get("/healthz").json()["backends"]["n6"]
            assert health == {"summary": ["N6: no trunk declared"], "ovs_datapaths": None}
            client.headers.update(login(client, "admin", admin_password(app.cfg)))
            refused = client.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "command_not_found"
            assert client.get("/api/v1/n6/trunks").json() == []
    finally:
        app.close()
