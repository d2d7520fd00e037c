"""Per-client request rate limit: a token bucket in memory, 429 with Retry-After.

A client is its bearer token once that token has authenticated, else its remote
address, so one flooding client cannot starve the others on the same host (the UI,
the agent and the CLI all call from loopback). The limiter runs before
authentication, so a token it has not yet seen authenticate is charged to the
address: a flood of made-up tokens shares one bucket and cannot mint a fresh one per
request. Both the buckets and the set of known tokens are bounded: idle buckets are
dropped first, then the least recently used.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
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

from towerbox_core.asgi_status import StatusRecorder
from towerbox_core.problems import PROBLEM_JSON

MAX_CLIENTS = 10_000  # buckets and known tokens each; past it, the least recent go


class TokenBuckets:
    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._clock = clock
        # key -> (tokens, at), least recently used first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if key not in self._buckets and len(self._buckets) >= MAX_CLIENTS:
            self._make_room(now)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        return wait

    def _make_room(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key, (_, at) in list(self._buckets.items()):
            if now - at >= full_after:
                del self._buckets[key]
        # Every client still active: forget the one seen longest ago. It starts again
        # with a full bucket, which bounds memory at the price of one burst.
        while len(self._buckets) >= MAX_CLIENTS:
            self._buckets.popitem(last=False)


class KnownTokens:
    """Digests of the tokens that authenticated, the least recently used first out."""

    def __init__(self) -> None:
        self._digests: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, digest: str) -> bool:
        if digest not in self._digests:
            return False
        self._digests.move_to_end(digest)
        return True

    def add(self, digest: str) -> None:
        self._digests[digest] = None
        self._digests.move_to_end(digest)
        while len(self._digests) > MAX_CLIENTS:
            self._digests.popitem(last=False)

    def discard(self, digest: str) -> None:
        self._digests.pop(digest, None)


def token_digest(scope: Scope) -> str | None:
    """The Authorization header's digest: memory must not keep the token itself."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return "token:" + hashlib.sha256(value).hexdigest()[:32]
    return None


def client_key(scope: Scope, known: KnownTokens) -> str:
    digest = token_digest(scope)
    if digest is not None and digest in known:
        return digest
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:local"


def rate_limit_middleware(
    buckets: TokenBuckets, exempt: frozenset[str] = frozenset({"/healthz"})
) -> Callable[[ASGIApp], ASGIApp]:
    known = KnownTokens()

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or scope["path"] in exempt:
                await app(scope, receive, send)
                return
            wait = buckets.take(client_key(scope, known))
            if not wait:
                await _serve_and_learn(app, scope, receive, send, known)
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


async def _serve_and_learn(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, known: KnownTokens
) -> None:
    """Serve the request; a token the authentication accepted earns its own bucket,
    one it refused (revoked, expired) loses it."""
    digest = token_digest(scope)
    if digest is None:
        await app(scope, receive, send)
        return
    capture = StatusRecorder(send, default=0)
    await app(scope, receive, capture)
    if capture.status == 401:
        known.discard(digest)
    elif scope.get("user") is not None:  # set by the authentication middleware
        known.add(digest)
