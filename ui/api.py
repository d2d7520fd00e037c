"""The one door to the appliance API: async httpx with the signed-in user's token.

Every failure becomes an ApiError carrying the appliance's stable problem code, so
pages show "[code] detail" and never a traceback. An unreachable appliance is its
own code, ``appliance_unreachable``, because the operator's next step differs.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)

UNREACHABLE = "appliance_unreachable"


def vm_path(name: str, *rest: str) -> str:
    """/api/v1/vms/<name>/...: the name quoted whole, so it never becomes another route."""
    return "/".join(["/api/v1/vms", quote(name, safe=""), *rest])


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, problem: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"[{code}] {message}")
        self.status = status
        self.code = code
        self.message = message
        self.problem = problem or {}

    @property
    def field(self) -> str | None:
        value = self.problem.get("field")
        return str(value) if value is not None else None

    @property
    def text(self) -> str:
        """What a page shows: the detail with its code, the way the CLI prints it."""
        return f"{self.message} [{self.code}]"


def _error_from(resp: httpx.Response) -> ApiError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body:
        detail = str(body.get("detail") or body.get("title") or f"HTTP {resp.status_code}")
        return ApiError(resp.status_code, str(body["code"]), detail, body)
    return ApiError(
        resp.status_code, f"http_{resp.status_code}", resp.text[:200] or resp.reason_phrase
    )


class ApplianceApi:
    def __init__(
        self,
        base_url: str,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise ApiError(0, "ui_stopping", "the UI is shutting down")
        # Made on first use, inside the event loop that will drive it.
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url, timeout=self._timeout, transport=self._transport
            )
        return self._client

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def request(
        self,
        method: str,
        path: str,
        token: str | None,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            resp = await self._http().request(
                method, path, json=json, params=params, headers=headers
            )
        except httpx.TimeoutException as err:
            raise ApiError(
                0, "appliance_timeout", f"the appliance at {self.base_url} did not answer in time"
            ) from err
        except httpx.TransportError as err:
            raise ApiError(
                0,
                UNREACHABLE,
                f"the appliance at {self.base_url} does not answer ({type(err).__name__}); "
                "is towerbox-appliance running?",
            ) from err
        if resp.status_code >= 400:
            raise _error_from(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        if resp.headers.get("content-type", "").startswith("text/"):
            return resp.text
        return resp.json()

    async def login(self, username: str, password: str) -> dict[str, Any]:
        body = {"username": username, "password": password}
        result: dict[str, Any] = await self.request("POST", "/api/v1/auth/login", None, json=body)
        return result

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/healthz", None)
        return result
