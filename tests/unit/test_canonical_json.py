"""The journal checksum's canonical form: sorted keys, compact, at any depth."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from towerbox_core.json_depth import json_depth_exceeds
from towerbox_core.wire import WireEntry, canonical_json, journal_checksum


def _sorted(value: Any) -> Any:
    """The recursive form the checksum always had; shallow values must not change."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        None,
        1,
        -2.5,
        'x"y\u00e9',
        [],
        {},
        [[]],
        {"b": [1, 2.5, {"z": None, "a": "s"}], "a": {}, "c": [], "d": True},
        {"name": "vm-1", "spec": {"cpus": 4, "nics": [{"vnet": "a"}], "labels": {"b": "1"}}},
    ],
)
def test_canonical_json_is_the_key_sorted_encoding(value: Any) -> None:
    assert canonical_json(value) == msgspec.json.encode(_sorted(value))


def test_the_checksum_of_a_deeply_nested_state_does_not_recurse() -> None:
    value: Any = 1
    for _ in range(5000):
        value = {"b": 2, "a": [value]}
    entry = WireEntry(1, "k", "t", "o", value)
    assert len(journal_checksum([entry])) == 64
    encoded = canonical_json(value)
    assert encoded.startswith(b'{"a":[{"a":[')
    assert encoded.endswith(b'],"b":2}],"b":2}')


@pytest.mark.parametrize(
    ("body", "limit", "deeper"),
    [
        (b"[[[]]]", 3, False),
        (b"[[[]]]", 2, True),
        (b'{"a":"[[[[{{{{"}', 1, False),  # brackets inside strings do not count
        (b'["\\\\", ["\\"[["]]', 2, False),  # nor after escaped quotes and backslashes
        (b'["\\\\", ["\\"[["]]', 1, True),
        (b"1", 0, False),
        # Brackets in strings that would pair up with real ones must not hide depth.
        (b'[[[["]]]",[[[]]],"[[["]]]]', 6, True),
        (b'[[[["]]]",[[[]]],"[[["]]]]', 7, False),
        # Unbalanced, so invalid, yet deep enough to exhaust a recursive decoder.
        (b"[" * 2000 + b"}", 64, True),
        (b"[}", 64, False),
    ],
)
def test_depth_is_counted_on_the_raw_bytes(body: bytes, limit: int, deeper: bool) -> None:
    assert json_depth_exceeds(body, limit) is deeper
