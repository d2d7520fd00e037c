"""Building httpx clients: TLS against a configured CA, unix sockets, problem answers."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from edge_agent.errors import Refused, SequenceGap, Unreachable


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Verify the registry against ``ca_file`` only, or the system's CAs when empty."""
    ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def async_client(url: str, timeout: float, ca_file: str = "", token: str = "") -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=8, keepalive_expiry=30)
    if url.startswith("unix:"):
        return httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=url.removeprefix("unix:"), limits=limits),
            base_url="http://appliance",
            headers=headers,
            timeout=timeout,
        )
    return httpx.AsyncClient(
        base_url=url.rstrip("/"),
        headers=headers,
        timeout=timeout,
        verify=tls_context(ca_file),
        limits=limits,
    )


async def call(
    client: httpx.AsyncClient, where: str, method: str, path: str, **kw: Any
) -> httpx.Response:
    """One request; transport errors and 5xx become ``Unreachable``, 4xx ``Refused``."""
    try:
        resp = await client.request(method, path, **kw)
    except httpx.HTTPError as err:
        raise Unreachable(where, f"{type(err).__name__}: {err}") from err
    if resp.status_code >= 500:
        raise Unreachable(where, f"answered {resp.status_code}")
    if resp.status_code >= 400:
        try:
            problem = resp.json()
        except ValueError:
            problem = {"code": "http_error", "detail": resp.text[:200]}
        if not isinstance(problem, dict):
            problem = {"code": "http_error", "detail": str(problem)[:200]}
        if problem.get("code") == "sequence_gap":
            raise SequenceGap(where, resp.status_code, problem)
        raise Refused(where, resp.status_code, problem)
    return resp
