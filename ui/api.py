"""The one door to the appliance API: the core's async client with the signed-in
user's token.

Every failure becomes an ApiError carrying the appliance's stable problem code, so
pages show "[code] detail" and never a traceback. An unreachable appliance is its
own code, ``appliance_unreachable``, because the operator's next step differs.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from towerbox_core.client import ApiError, AsyncApiClient
from ui.shared_reads import SharedReads

log = logging.getLogger(__name__)

UNREACHABLE = "appliance_unreachable"

__all__ = ["UNREACHABLE", "ApiError", "ApplianceApi", "service_path", "tenant_path", "vm_path"]


def vm_path(name: str, *rest: str) -> str:
    """/api/v1/vms/<name>/...: the name quoted whole, so it never becomes another route."""
    return "/".join(["/api/v1/vms", quote(name, safe=""), *rest])


def tenant_path(name: str, *rest: str) -> str:
    """/api/v1/tenants/<name>/..., quoted the same way."""
    return "/".join(["/api/v1/tenants", quote(name, safe=""), *rest])


def service_path(name: str, *rest: str) -> str:
    """/api/v1/services/<name>/..., quoted the same way."""
    return "/".join(["/api/v1/services", quote(name, safe=""), *rest])


class ApplianceApi(AsyncApiClient):
    def __init__(
        self,
        base_url: str,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        shared_max_age_s: float = 1.5,
    ) -> None:
        super().__init__(
            base_url,
            timeout=timeout_s,
            transport=transport,
            what="the appliance",
            unreachable_code=UNREACHABLE,
            unreachable_hint="is towerbox-appliance running?",
        )
        self.base_url = self.url
        self._shared = SharedReads(
            lambda path, token: self.request("GET", path, token), shared_max_age_s
        )

    async def login(self, username: str, password: str) -> dict[str, Any]:
        body = {"username": username, "password": password}
        result: dict[str, Any] = await self.request("POST", "/api/v1/auth/login", None, json=body)
        return result

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.shared_get("/healthz", None)
        return result

    async def aclose(self) -> None:
        await self._shared.close()
        await super().aclose()

    async def shared_get(self, path: str, token: str | None, since: float | None = None) -> Any:
        """A GET that open pages poll alike (the frame's): one read serves them all
        for a moment, or only one asked for ``since`` then (ui.shared_reads)."""
        return await self._shared.get(path, token, since)
