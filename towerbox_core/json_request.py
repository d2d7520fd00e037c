"""The Litestar request class both programs use: JSON bodies bounded in depth.

Every ``data:`` parameter is decoded through ``Request.json()``, whatever the
Content-Type says, so bounding it here covers every JSON body a route declares.
Routes that read and decode the body themselves call ``check_json_depth``.
A route handler (or its controller) may raise the bound with ``opt={OPT_KEY: n}``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.types import Empty

from towerbox_core.json_depth import MAX_JSON_DEPTH, check_json_depth

OPT_KEY = "max_json_depth"


class BoundedJsonRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        if self._json is Empty:  # not decoded yet by this request
            limit = int(self.route_handler.opt.get(OPT_KEY, MAX_JSON_DEPTH))
            check_json_depth(await self.body(), limit)
        return await super().json()
