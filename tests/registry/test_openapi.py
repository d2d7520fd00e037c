"""The registry's OpenAPI document describes every answer with a named schema."""

from __future__ import annotations

from typing import Any

from tests.registry.fleetapi import Api

METHODS = ("get", "put", "post", "delete", "patch")


def _names_a_component(schema: Any) -> bool:
    """A $ref anywhere inside: a struct, a list of them, or one of them or null.

    A handler answering a bare dict shows as ``{"type": "object"}`` and names none.
    """
    if isinstance(schema, dict):
        return "$ref" in schema or any(_names_a_component(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_names_a_component(v) for v in schema)
    return False


def test_every_operation_documents_its_answer(sqlite_api: Api) -> None:
    resp = sqlite_api.client.get("/api/schema/openapi.json", headers=sqlite_api.admin)
    assert resp.status_code == 200, resp.text
    document = resp.json()
    components = document["components"]["schemas"]
    checked = []
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            answers = {
                code: answer
                for code, answer in operation["responses"].items()
                if code.startswith("2")
            }
            where = f"{method.upper()} {path}"
            assert answers, f"{where} documents no 2xx answer"
            if set(answers) == {"204"}:
                continue
            schemas = [
                media.get("schema")
                for answer in answers.values()
                for kind, media in answer.get("content", {}).items()
                # A CSV twin of a documented JSON answer; a blob's bytes are the answer;
                # /metrics answers Prometheus' text format.
                if kind not in ("text/csv", "application/octet-stream")
                and not kind.startswith("text/plain; version=0.0.4")
            ]
            if not schemas:
                continue
            assert any(_names_a_component(s) for s in schemas), f"{where}: {schemas}"
            checked.append(where)
    assert "GET /healthz" in checked
    assert "POST /api/v1/sync/heartbeat" in checked
    assert {"SiteDetail", "SiteList", "FleetVms", "HeartbeatReply"} <= set(components)


def test_the_sync_routes_document_the_bodies_they_decode_themselves(sqlite_api: Api) -> None:
    document = sqlite_api.client.get("/api/schema/openapi.json", headers=sqlite_api.admin).json()
    for path, struct in (
        ("/api/v1/sync/journal", "JournalBatch"),
        ("/api/v1/sync/heartbeat", "Heartbeat"),
    ):
        operation = document["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{struct}"}
        assert struct in document["components"]["schemas"]
        assert {"400", "401", "413", "429"} <= set(operation["responses"])
