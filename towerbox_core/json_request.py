"""The Litestar request class both programs use: JSON bodies bounded in depth and held
to the types their route names.

Every ``data:`` parameter is decoded through ``Request.json()``, whatever the
Content-Type says, so checking here covers every JSON body a route declares.
Routes that read and decode the body themselves call ``check_json_depth``.
A route handler (or its controller) may raise the bound with ``opt={OPT_KEY: n}``.

Types: Litestar converts a decoded body into the route's type with msgspec's lax
rules, which it needs for path and query strings; for a body they take ``"3"`` for
the integer 3 and ``"1"`` for true. A client sends what the contract says, so the
body is decoded once more here, strictly, and anything only the lax rules accept is
refused as invalid_request, naming the field.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.types import Empty

from towerbox_core.json_depth import MAX_JSON_DEPTH, check_json_depth

OPT_KEY = "max_json_depth"


class BoundedJsonRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        if self._json is Empty:  # not decoded yet by this request
            body = await self.body()
            limit = int(self.route_handler.opt.get(OPT_KEY, MAX_JSON_DEPTH))
            check_json_depth(body, limit)
            check_types(body, self.route_handler)
        return await super().json()


def check_types(body: bytes, handler: Any) -> None:
    """Refuse a body whose values are not of the types the route's ``data`` names."""
    field = handler.parsed_fn_signature.parameters.get("data")
    if field is None or not body.strip():
        return
    try:
        msgspec.json.decode(body, type=field.annotation)
    except msgspec.ValidationError as err:
        message, _, where = str(err).rpartition(" - at `$")
        if not message:  # an error about the whole body
            message, where = str(err), ""
        key = where.rstrip("`").removeprefix(".") or "body"
        raise ValidationException(
            detail=f"{key}: {message}",
            extra=[{"message": message, "key": key, "source": "body"}],
        ) from err
    except (msgspec.DecodeError, TypeError):
        # Not JSON (Litestar's own decode refuses it next), or a type msgspec cannot
        # decode without the route's decoders: the lax conversion is all there is.
        return
