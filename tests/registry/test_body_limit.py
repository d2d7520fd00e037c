"""Bodies past the registry's limit answer 413 body_too_large with the limit; the
routes with their own bounds keep them."""

from __future__ import annotations

from tests.registry.fleetapi import Api


def test_a_desired_document_past_the_limit_is_a_413(sqlite_api: Api) -> None:
    limit = sqlite_api.registry.cfg.serve.max_body_bytes
    resp = sqlite_api.client.put(
        "/api/v1/sites/s1/desired/gpu",
        content=b" " * (limit + 1),
        headers={**sqlite_api.admin, "Content-Type": "application/json"},
    )
    assert resp.status_code == 413, resp.text
    assert resp.json()["code"] == "body_too_large"
    assert resp.json()["limit_bytes"] == limit
