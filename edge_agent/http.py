"""The agent's calls: the core's client, with answers sorted by what the agent does."""

from __future__ import annotations

from typing import Any

import httpx

from edge_agent.errors import Refused, SequenceGap, Unreachable
from towerbox_core.client import decode_problem


async def call(
    client: httpx.AsyncClient, where: str, method: str, path: str, **kw: Any
) -> httpx.Response:
    """One request; transport errors and 5xx become ``Unreachable``, 4xx ``Refused``."""
    try:
        resp = await client.request(method, path, **kw)
    except httpx.HTTPError as err:
        raise Unreachable(where, f"{type(err).__name__}: {err}") from err
    if resp.status_code >= 500:
        # Transient all the same, but the log says why (storage_full, store_busy, ...).
        problem = decode_problem(resp)
        code = str(problem.get("code", ""))
        detail = str(problem.get("detail", ""))[:300]
        raise Unreachable(where, f"answered {resp.status_code} {code}: {detail}", code)
    if resp.status_code >= 400:
        problem = decode_problem(resp)
        if problem.get("code") == "sequence_gap":
            raise SequenceGap(where, resp.status_code, problem)
        raise Refused(where, resp.status_code, problem)
    return resp
