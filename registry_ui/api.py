"""The one door to the registry API: the core's async client, the operator's token per call.

Every failure becomes an ApiError with the registry's stable problem code; an
unreachable registry is its own code, ``registry_unreachable``, so the frame shows a
banner and the pages keep their last figures.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from towerbox_core.client import ApiError, AsyncApiClient

UNREACHABLE = "registry_unreachable"

__all__ = ["UNREACHABLE", "ApiError", "RegistryApi", "desired_path", "site_path"]


def site_path(name: str, *rest: str) -> str:
    """/api/v1/sites/<name>/...: the name quoted whole, so it never becomes another route."""
    return "/".join(["/api/v1/sites", quote(name, safe=""), *rest])


def desired_path(scope: str, kind: str) -> str:
    """The document of ``kind`` for ``site:<name>`` or ``group:<key>=<value>``."""
    what, _, name = scope.partition(":")
    base = "/api/v1/sites" if what == "site" else "/api/v1/groups"
    return "/".join([base, quote(name, safe=""), "desired", quote(kind, safe="")])


class RegistryApi(AsyncApiClient):
    def __init__(
        self,
        base_url: str,
        timeout_s: float = 30.0,
        ca_file: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            timeout=timeout_s,
            ca_file=ca_file,
            transport=transport,
            what="the registry",
            unreachable_code=UNREACHABLE,
            timeout_code="registry_timeout",
            unreachable_hint="is towerbox-registry running, and the network to it up?",
        )

    async def login(self, username: str, password: str) -> str:
        body = {"username": username, "password": password}
        answer: dict[str, Any] = await self.request("POST", "/api/v1/auth/login", None, json=body)
        return str(answer["token"])

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/healthz")
        return result
