"""The status of the response an ASGI app sends, for middlewares that act on it, and
the request-latency middleware both APIs share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # prometheus_client is a dependency of the programs, not of the core
    from prometheus_client import Histogram


class StatusRecorder:
    """A ``send`` that passes every message on and keeps the response's status."""

    def __init__(self, send: Send, default: int) -> None:
        self._send = send
        self.status = default  # until the app starts a response

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


def latency_middleware(histogram: Histogram) -> Callable[[ASGIApp], ASGIApp]:
    """Time every HTTP request into ``histogram`` labelled method, route, status."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            capture = StatusRecorder(send, default=500)
            try:
                await app(scope, receive, capture)
            finally:
                # The route template, not the path: names in paths must not explode labels.
                route = scope.get("path_template") or "unmatched"
                histogram.labels(
                    method=scope.get("method", "?"), route=route, status=str(capture.status)
                ).observe(time.perf_counter() - started)

        return middleware

    return factory
