"""The appliance API refuses deeply nested JSON bodies with 400 json_too_deep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.store.models import Vm
from tests.support.appliance import admin_password, api_client, built, login


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    appliance = built(tmp_path)
    try:
        with api_client(appliance) as c:
            c.headers.update(login(c, "admin", admin_password(appliance.cfg)))
            yield c
    finally:
        appliance.close()


@pytest.mark.parametrize("levels", [100, 1000])
def test_a_vm_create_nested_deep_is_a_400(client: TestClient[Any], levels: int) -> None:
    body = b'{"name":"deep","appliance":"demo","spec":{"labels":'
    body += b"[" * levels + b"]" * levels + b"}}"
    resp = client.post("/api/v1/vms", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "json_too_deep"
    assert not Vm.select().where(Vm.name == "deep").exists()


def test_a_desired_document_may_wrap_a_document_as_deep_as_the_registry_allows(
    client: TestClient[Any],
) -> None:
    # 65 levels in all: more than a user's body may nest, within the wire's bound.
    inner = b"[" * 63 + b"]" * 63
    body = b'{"kind":"tenants","etag":"e","version":1,"source":"site","document":{"x":'
    body += inner + b"}}"
    resp = client.post("/api/v1/desired/tenants", content=body)
    # Refused for what it holds, not for how deep it nests.
    assert (resp.status_code, resp.json()["code"]) == (422, "invalid_desired_document")
