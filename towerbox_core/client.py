"""One HTTP client for Towerbox's own APIs, sync and async, with one problem decoder.

The CLI, the node UI and the edge agent call the appliance and the registry through
this module. Every problem answer (RFC 9457, with our stable ``code``) becomes an
``ApiError``, so nobody decodes problem documents by hand. The sync ``ApiClient``
lives in ``sync_client`` on the standard library (a command line must not pay for
importing httpx) and is re-exported here.
A URL ``unix:/path`` talks HTTP over that unix socket (the appliance's local door).
"""

from __future__ import annotations

from typing import Any

import httpx

from towerbox_core.sync_client import UNIX as _UNIX
from towerbox_core.sync_client import ApiClient, ApiError, api_error, problem_from, tls_context

__all__ = [
    "ApiClient",
    "ApiError",
    "AsyncApiClient",
    "answer_body",
    "async_http",
    "decode_problem",
    "error_from_response",
    "sync_http",
    "tls_context",
]

_SOCKET_BASE = "http://appliance"  # the host part is ignored over a unix socket


def decode_problem(resp: httpx.Response) -> dict[str, Any]:
    """The problem document of an error answer; one made up when it sent none."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    return problem_from(
        resp.status_code, resp.reason_phrase, body, resp.text if resp.content else ""
    )


def error_from_response(resp: httpx.Response) -> ApiError:
    return api_error(resp.status_code, decode_problem(resp))


def answer_body(resp: httpx.Response) -> Any:
    """A success answer's body: JSON decoded, text as text, None when empty."""
    if resp.status_code >= 400:
        raise error_from_response(resp)
    if resp.status_code == 204 or not resp.content:
        return None
    content_type = resp.headers.get("content-type", "")
    if content_type.startswith("text/"):
        return resp.text
    if "json" in content_type:
        return resp.json()
    return resp.text


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def sync_http(
    url: str, *, token: str | None = None, timeout: float = 30.0, ca_file: str = ""
) -> httpx.Client:
    """An httpx client for ``url`` (``unix:/path`` for a socket), with the token set."""
    if url.startswith(_UNIX):
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=url.removeprefix(_UNIX)),
            base_url=_SOCKET_BASE,
            headers=_headers(token),
            timeout=timeout,
        )
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers=_headers(token),
        timeout=timeout,
        verify=tls_context(ca_file) if url.startswith("https:") else True,
    )


def async_http(
    url: str,
    *,
    token: str | None = None,
    timeout: float = 30.0,
    ca_file: str = "",
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The async twin of ``sync_http``; ``transport`` lets a test or the UI bring its own."""
    limits = httpx.Limits(max_connections=8, keepalive_expiry=30)
    if url.startswith(_UNIX):
        return httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=url.removeprefix(_UNIX), limits=limits),
            base_url=_SOCKET_BASE,
            headers=_headers(token),
            timeout=timeout,
        )
    return httpx.AsyncClient(
        base_url=url.rstrip("/"),
        headers=_headers(token),
        timeout=timeout,
        verify=tls_context(ca_file) if url.startswith("https:") else True,
        limits=limits,
        transport=transport,
    )


class AsyncApiClient:
    """The async client: one connection pool, a bearer token per call (the UI serves
    several signed-in users through one client)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        ca_file: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
        what: str = "the appliance",
        unreachable_code: str = "appliance_unreachable",
        timeout_code: str = "appliance_timeout",
        unreachable_hint: str = "",
    ) -> None:
        self.url = url.rstrip("/")
        self._timeout_code = timeout_code
        self._timeout = timeout
        self._ca_file = ca_file
        self._transport = transport
        self._what = what
        self._unreachable_code = unreachable_code
        self._hint = unreachable_hint
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise ApiError(0, "client_closed", f"the connection to {self._what} is closed")
        # Made on first use, inside the event loop that will drive it.
        if self._client is None:
            self._client = async_http(
                self.url, timeout=self._timeout, ca_file=self._ca_file, transport=self._transport
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
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """``headers`` adds to the token's (If-Match on a versioned write)."""
        try:
            resp = await self._http().request(
                method,
                path,
                json=json,
                params=params,
                headers={**_headers(token), **(headers or {})},
            )
        except httpx.TimeoutException as err:
            raise ApiError(
                0,
                self._timeout_code,
                f"{self._what} at {self.url} did not answer in time",
            ) from err
        except httpx.TransportError as err:
            hint = f"; {self._hint}" if self._hint else ""
            raise ApiError(
                0,
                self._unreachable_code,
                f"{self._what} at {self.url} does not answer ({type(err).__name__}){hint}",
            ) from err
        return answer_body(resp)
