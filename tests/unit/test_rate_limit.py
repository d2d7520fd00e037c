"""The per-client token bucket behind the API's 429 rate_limited."""

from __future__ import annotations

import pytest

from towerbox_core import rate_limit
from towerbox_core.rate_limit import KnownTokens, TokenBuckets, client_key, token_digest


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_waits_for_the_refill() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate_per_s=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 0.5
    assert buckets.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == 0.0


def test_the_bucket_never_holds_more_than_the_burst() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate_per_s=1.0, burst=2, clock=clock)
    buckets.take("a")
    clock.now += 1000
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 1.0]


def test_idle_clients_are_forgotten_when_the_table_is_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rate_limit, "MAX_CLIENTS", 3)
    clock = FakeClock()
    buckets = TokenBuckets(rate_per_s=10.0, burst=10, clock=clock)
    for key in "abc":
        buckets.take(key)
    clock.now += 5  # every bucket full again: nothing to remember
    buckets.take("d")
    assert set(buckets._buckets) == {"d"}


def test_active_clients_past_the_bound_push_out_the_least_recent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rate_limit, "MAX_CLIENTS", 3)
    clock = FakeClock()
    buckets = TokenBuckets(rate_per_s=1.0, burst=10, clock=clock)
    for key in "abcd":  # nobody idle long enough to be swept
        buckets.take(key)
    buckets.take("b")
    buckets.take("e")
    assert list(buckets._buckets) == ["d", "b", "e"]


def test_a_client_is_its_known_token_else_its_address() -> None:
    with_token = {"headers": [(b"authorization", b"Bearer secret")], "client": ("10.0.0.1", 1)}
    other_token = {"headers": [(b"authorization", b"Bearer other")], "client": ("10.0.0.1", 1)}
    anonymous = {"headers": [], "client": ("10.0.0.1", 2)}
    known = KnownTokens()
    # Not yet seen to authenticate: charged to the address like an anonymous client.
    assert client_key(with_token, known) == "addr:10.0.0.1"  # type: ignore[arg-type]
    digest = token_digest(with_token)  # type: ignore[arg-type]
    assert digest is not None and "secret" not in digest
    known.add(digest)
    assert client_key(with_token, known) == digest  # type: ignore[arg-type]
    assert client_key(other_token, known) == "addr:10.0.0.1"  # type: ignore[arg-type]
    assert client_key(anonymous, known) == "addr:10.0.0.1"  # type: ignore[arg-type]
    known.discard(digest)
    assert client_key(with_token, known) == "addr:10.0.0.1"  # type: ignore[arg-type]


def test_known_tokens_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limit, "MAX_CLIENTS", 2)
    known = KnownTokens()
    for digest in ("a", "b", "c"):
        known.add(digest)
    assert "a" not in known and "b" in known and "c" in known
