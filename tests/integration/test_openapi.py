"""The node API documents a typed answer on every route.

Every operation's 2xx answer (204 aside) has a schema built from the core's structs:
a reference to a component, a list or map of them, or plain text for the text routes.
An untyped ``dict[str, Any]`` answer shows up as a bare object and fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, get

from appliance.api.app import create_app
from appliance.context import Appliance
from tests.support.appliance import admin_password, api_client, built, login

_METHODS = ("get", "put", "post", "delete", "patch")
_SCALARS = ("string", "integer", "number", "boolean", "null")


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    app = built(tmp, TOWERBOX_GPU_BACKEND="simulated", TOWERBOX_N6_BACKEND="simulated")
    yield app
    app.close()


def _typed(schema: dict[str, Any]) -> bool:
    """A reference, a scalar, or a list/map/union whose every part is typed."""
    union = schema.get("oneOf") or schema.get("anyOf")
    kind = schema.get("type")
    extra = schema.get("additionalProperties")
    if "$ref" in schema:
        typed = True
    elif union is not None:
        typed = all(_typed(s) for s in union)
    elif isinstance(kind, list) or kind in _SCALARS:
        typed = all(k in _SCALARS for k in kind) if isinstance(kind, list) else True
    elif kind == "array":
        typed = _typed(schema.get("items", {}))
    else:  # an object is typed only as a map of typed values
        typed = kind == "object" and isinstance(extra, dict) and bool(extra) and _typed(extra)
    return typed


def _untyped_operations(document: dict[str, Any]) -> list[str]:
    bad = []
    for path, item in document["paths"].items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            answers = {c: r for c, r in op.get("responses", {}).items() if c.startswith("2")}
            if set(answers) == {"204"}:
                continue
            schemas = [
                media.get("schema", {})
                for code, answer in answers.items()
                if code != "204"
                for media in answer.get("content", {}).values()
            ]
            if not schemas or not all(_typed(s) for s in schemas):
                bad.append(f"{method.upper()} {path}")
    return bad


def _document(app: Litestar) -> dict[str, Any]:
    return app.openapi_schema.to_schema()


def test_every_route_documents_a_typed_answer(appliance: Appliance) -> None:
    with api_client(appliance) as client:
        headers = login(client, "admin", admin_password(appliance.cfg))
        resp = client.get("/api/schema/openapi.json", headers=headers)
    assert resp.status_code == 200, resp.text
    document = resp.json()
    assert len(document["paths"]) > 30
    assert _untyped_operations(document) == []


def test_an_untyped_answer_is_caught(appliance: Appliance) -> None:
    @get("/api/v1/untyped", sync_to_thread=False)
    def untyped() -> dict[str, Any]:
        return {}

    app = create_app(appliance)
    app.register(untyped)
    assert _untyped_operations(_document(app)) == ["GET /api/v1/untyped"]


def test_every_route_documents_its_problem_answers(appliance: Appliance) -> None:
    with api_client(appliance) as client:
        headers = login(client, "admin", admin_password(appliance.cfg))
        document = client.get("/api/schema/openapi.json", headers=headers).json()
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert document["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
        "code",
    ]
    vm = document["paths"]["/api/v1/vms/{name}"]
    assert {"400", "401", "403", "404", "422", "429", "503"} <= set(vm["get"]["responses"])
    assert {"409", "413"} <= set(document["paths"]["/api/v1/vms"]["post"]["responses"])
    for item in document["paths"].values():
        for op in item.values():
            for status, answer in op["responses"].items():
                if int(status) >= 400:
                    assert answer["content"] == problem
    login_answers = document["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert "401" in login_answers and "403" not in login_answers  # public, but may refuse
    assert set(document["paths"]["/healthz"]["get"]["responses"]) == {"200"}
    upf = document["paths"]["/api/v1/n6/upf-config"]["get"]["responses"]["200"]["content"]
    assert upf["application/yaml"]["schema"] == {"$ref": "#/components/schemas/UpfConfig"}
