"""Talking to a registry under test: an admin client, enrolled sites, journal batches."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from litestar.testing import TestClient

from registry.api.app import create_app
from registry.config import RegistryConfig, load_config
from registry.context import Registry


def make_config(tmp: Path, database: str = "", **env: str) -> RegistryConfig:
    values = {
        "TOWERBOX_REGISTRY_STATE_DIR": str(tmp / "registry"),
        "TOWERBOX_REGISTRY_DATABASE": database,
        **env,
    }
    return load_config(tmp / "absent.toml", values)


@dataclass
class Api:
    client: TestClient[Any]
    registry: Registry
    admin: dict[str, str]

    def create_site(self, name: str, **body: Any) -> dict[str, Any]:
        resp = self.client.post("/api/v1/sites", json={"name": name, **body}, headers=self.admin)
        assert resp.status_code == 201, resp.text
        result: dict[str, Any] = resp.json()
        return result

    def enroll(self, name: str, **body: Any) -> dict[str, str]:
        """Create and enroll a site; the Authorization header of its agent."""
        token = self.create_site(name, **body)["enrollment_token"]
        resp = self.client.post("/api/v1/enroll", json={"token": token, "hostname": name})
        assert resp.status_code == 200, resp.text
        return {"Authorization": f"Bearer {resp.json()['secret']}"}

    def viewer(self, username: str) -> dict[str, str]:
        """A new viewer operator, logged in; the Authorization header of its token."""
        password = "correct horse battery"
        made = self.client.post(
            "/api/v1/operators",
            json={"username": username, "password": password, "role": "viewer"},
            headers=self.admin,
        )
        assert made.status_code == 201, made.text
        login = self.client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert login.status_code == 201, login.text
        return {"Authorization": f"Bearer {login.json()['token']}"}

    def post_batch(
        self, site: dict[str, str], entries: list[dict[str, Any]], compacted_through: int = 0
    ) -> Any:
        body = gzip.compress(
            msgspec.json.encode({"entries": entries, "compacted_through": compacted_through})
        )
        return self.client.post(
            "/api/v1/sync/journal", content=body, headers={**site, "Content-Encoding": "gzip"}
        )


def api_for(registry: Registry) -> Iterator[Api]:
    with TestClient(create_app(registry)) as client:
        password = registry.cfg.admin_password_file.read_text().strip()
        resp = client.post("/api/v1/auth/login", json={"username": "admin", "password": password})
        assert resp.status_code == 201, resp.text
        yield Api(client, registry, {"Authorization": f"Bearer {resp.json()['token']}"})


def vm_entries(first: int, count: int, vms: int = 5, site_tag: str = "") -> list[dict[str, Any]]:
    """Journal entries as an appliance writes them: creations, then state changes."""
    entries = []
    for seq in range(first, first + count):
        vm = f"vm-{site_tag}{seq % vms}"
        if seq <= vms:
            kind = "vm.created"
            state: Any = {
                "spec": {"name": vm, "tenant": "acme", "role": "b2b", "vcpus": 2},
                "desired_state": "running",
            }
        else:
            kind = "vm.state"
            state = {"name": vm, "state": "running" if seq % 2 else "shutoff"}
        entries.append(
            {
                "seq": seq,
                "kind": kind,
                "object_type": "vm",
                "object_id": vm,
                "state": state,
                "created_at": f"2025-01-01T00:00:{seq % 60:02d}+00:00",
            }
        )
    return entries
