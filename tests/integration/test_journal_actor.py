"""The journal as an audit trail: every entry names who made the change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.context import Appliance
from appliance.store import journal
from appliance.store.models import Vm
from tests.support.tenancy import clients, tenant_node
from towerbox_core.commands import journal_table

Api = Any


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from tenant_node(tmp_path)


def _newest(kind: str, object_id: str | None = None) -> dict[str, Any]:
    found = [
        e
        for e in journal.entries(0, 1000)
        if e["kind"] == kind and (object_id is None or e["object_id"] == object_id)
    ]
    assert found, f"no {kind} entry"
    return found[-1]


def test_entries_name_the_user_token_tenant_or_job_behind_them(appliance: Appliance) -> None:
    for c, admin, acme in clients(appliance):
        body = {"name": "web", "appliance": "demo", "spec": {"role": "b2b"}, "start": True}
        resp = c.post("/api/v1/vms", headers=acme, json=body)
        assert resp.status_code == 201, resp.text
        assert _newest("vm.created")["actor"] == {"user": "acme-admin", "tenant": "acme"}

        # A named API token signs with its name as well as its owner's.
        minted = c.post("/api/v1/tokens", headers=acme, json={"name": "deploy-bot"})
        assert minted.status_code == 201, minted.text
        bot = {"Authorization": f"Bearer {minted.json()['token']}"}
        assert c.post("/api/v1/vms/web/stop", headers=bot).status_code in (200, 202)
        stopped = _newest("vm.stop")
        assert stopped["actor"] == {"user": "acme-admin", "token": "deploy-bot", "tenant": "acme"}

        quotas = c.put("/api/v1/tenants/acme/quotas", headers=admin, json={"vms": 7})
        assert quotas.status_code == 200, quotas.text
        assert _newest("tenant.quotas")["actor"] == {"user": "admin"}

        # The node's own jobs sign as jobs: the monitor journals a state it had not seen.
        Vm.update(observed_state="unknown").where(Vm.name == "web").execute()
        appliance.monitor_job()
        seen = _newest("vm.state")
        assert seen["actor"] == {"job": "monitor"}

        # The journal API and the CLI's table show the actor.
        page = c.get("/api/v1/journal", headers=admin, params={"limit": 1000}).json()
        assert all(e["actor"] is not None for e in page["entries"])
        text = journal_table(page["entries"])
        assert "acme-admin@acme (token deploy-bot)" in text
        assert "job:monitor" in text
