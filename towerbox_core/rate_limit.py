"""Per-client request rate limit: a token bucket in memory, 429 with Retry-After.

A client is its bearer token when it sends one, else its remote address, so one
flooding client cannot starve the others. Buckets of idle clients are dropped, so
memory stays bounded by the clients active within a few refill periods.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

import msgspec
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from towerbox_core.problems import PROBLEM_JSON

MAX_CLIENTS = 10_000  # past this, idle buckets are swept before a new one is made


class TokenBuckets:
    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            if key not in self._buckets and len(self._buckets) >= MAX_CLIENTS:
                self._sweep(now)
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key, (_, at) in list(self._buckets.items()):
            if now - at >= full_after:
                del self._buckets[key]


def client_key(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            # A digest: the key must not keep the token itself in memory.
            return "token:" + hashlib.sha256(value).hexdigest()[:32]
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:local"


def rate_limit_middleware(
    buckets: TokenBuckets, exempt: frozenset[str] = frozenset({"/healthz"})
) -> Callable[[ASGIApp], ASGIApp]:
    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or scope["path"] in exempt:
                await app(scope, receive, send)
                return
            wait = buckets.take(client_key(scope))
            if not wait:
                await app(scope, receive, send)
                return
            retry_after = max(1, math.ceil(wait))
            body = msgspec.json.encode(
                {
                    "type": "urn:towerbox:problem:rate_limited",
                    "title": "rate limited",
                    "status": 429,
                    "detail": f"too many requests from this client; retry in {retry_after} s",
                    "code": "rate_limited",
                    "rate_per_s": buckets.rate,
                    "burst": int(buckets.burst),
                }
            )
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry_after).encode()),
                ],
            }
            done: HTTPResponseBodyEvent = {
                "type": "http.response.body",
                "body": body,
                "more_body": False,
            }
            await send(start)
            await send(done)

        return middleware

    return factory
