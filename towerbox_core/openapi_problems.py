"""The problem-details answers in the OpenAPI document, so that a client (and a
fuzzer) can tell a documented refusal from a surprise.

Litestar documents a route's success and, where it reads input, a 400 in its own
shape. Every error here is a problem document (``towerbox_core.problems``), and some
refusals can come from any route: the authentication (401), the role and agent
guards (403), the rate limit (429), a busy store (503). Others follow from the
route's shape: a body can be too large (413), a name in the path can be malformed
(422) or name nothing (404), a change can name something that does not exist (404),
clash with the node's state (409) or break a rule (422). A route that refuses in
another way declares it on its handler with ``problem_responses``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from towerbox_core.problems import PROBLEM_JSON

PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `code` is stable, other members by code",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
    },
}
_DESCRIPTIONS = {
    400: "invalid request: a parameter or the body does not parse",
    401: "no valid credential",
    403: "the credential may not do this",
    404: "what the path names does not exist (or is not the caller's to see)",
    409: "conflicts with the current state",
    413: "request body too large",
    422: "well-formed but refused by a rule",
    429: "rate limited; see Retry-After",
    502: "a backend failed",
    503: "busy or a backend is unavailable; retry (Retry-After when busy)",
}
_METHODS = ("get", "put", "post", "delete", "patch")
_CHANGES = ("put", "post", "delete", "patch")


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """For a handler's ``responses=``: refusals its route makes beyond the usual ones;
    the document gives them the problem schema."""
    return {s: ResponseSpec(None, description=_DESCRIPTIONS.get(s, "refused")) for s in statuses}


def _usual_statuses(path: str, method: str, op: dict[str, Any], public: bool) -> list[int]:
    statuses = [429, 503]
    if not public:
        statuses += [401, 403]
    if op.get("parameters") or op.get("requestBody"):
        statuses.append(400)
    if op.get("requestBody"):
        statuses.append(413)
    if "{" in path:
        statuses += [404, 422]
    if method in _CHANGES:  # a change may name what does not exist (a GPU, a tenant)
        statuses += [404, 409, 422]
    return statuses


def declare_raw_bodies(document: dict[str, Any], bodies: Mapping[str, type]) -> None:
    """Describe the JSON bodies of routes that read theirs raw (``"POST /path"`` to its
    struct): Litestar sees no ``data`` parameter there and documents none."""
    if not bodies:
        return
    refs, components = msgspec.json.schema_components(
        tuple(bodies.values()), ref_template="#/components/schemas/{name}"
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.items():
        schemas.setdefault(name, schema)
    for (label, _), ref in zip(bodies.items(), refs, strict=True):
        method, _, path = label.partition(" ")
        op = document["paths"][path][method.lower()]
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}


def declare_problems(
    document: dict[str, Any], public_paths: Sequence[str], health_path: str = "/healthz"
) -> None:
    """Add the problem answers to every operation of ``document`` (idempotent)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    public = [re.compile(p) for p in public_paths]
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            responses = op.setdefault("responses", {})
            if path != health_path:  # the health check answers only what it declares
                is_public = any(p.match(path) for p in public)
                for status in _usual_statuses(path, method, op, is_public):
                    responses.setdefault(str(status), {})
            for status, answer in responses.items():
                if int(status) >= 400:
                    answer.setdefault("description", _DESCRIPTIONS.get(int(status), "refused"))
                    answer["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}


class ProblemsJsonRenderPlugin(JsonRenderPlugin):
    """The JSON document at /api/schema/openapi.json, with the problem answers."""

    def __init__(
        self, public_paths: Sequence[str], raw_bodies: Mapping[str, type], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.public_paths = list(public_paths)
        self.raw_bodies = dict(raw_bodies)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        declare_raw_bodies(openapi_schema, self.raw_bodies)  # first: it adds 400 and 413
        declare_problems(openapi_schema, self.public_paths)
        return super().render(request, openapi_schema)


def bearer_openapi(
    title: str,
    token_help: str,
    public_paths: Sequence[str],
    raw_bodies: Mapping[str, type] | None = None,
) -> OpenAPIConfig:
    """The OpenAPI document at /api/schema, with one bearer-token scheme for all routes
    and the problem answers; ``public_paths`` (regular expressions) need no token;
    ``raw_bodies`` describes the bodies of routes that decode their own."""
    return OpenAPIConfig(
        title=title,
        version="1",
        path="/api/schema",
        render_plugins=[ProblemsJsonRenderPlugin(public_paths, raw_bodies or {})],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", description=token_help)
            }
        ),
        security=[{"bearer": []}],
    )
