"""How deep a JSON body may nest, checked on the raw bytes before anything decodes them.

msgspec and Python's own recursion stop near 1,000 levels with a RecursionError (a
500), and a value a little shallower decodes fine but breaks whatever later walks it
recursively (the journal checksum's canonical sort). So both programs refuse a body
nested deeper than a bound far above any real document, at the edge, with a 400.
"""

from __future__ import annotations

import re

from towerbox_core.errors import TowerboxError

# Objects and arrays, counted together; real documents nest fewer than ten.
MAX_JSON_DEPTH = 64
# Sync-protocol bodies wrap a document that was bounded where it entered (a journal
# batch wraps an entry's state, a desired document wraps the operator's document).
MAX_WIRE_JSON_DEPTH = MAX_JSON_DEPTH + 16

# A whole string, escapes included: brackets inside strings do not count.
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRINGS = re.compile(_STRING, re.DOTALL)
_TOKENS = re.compile(_STRING + rb"|([\[{])|[\]}]", re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_EMPTY_PAIRS = re.compile(rb"\[\]|\{\}")
_QUOTE = ord('"')


class JsonTooDeep(TowerboxError):
    code = "json_too_deep"
    status = 400


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether ``body`` nests objects/arrays deeper than ``limit``.

    Exact for valid JSON; for invalid JSON it may answer either way, and the decoder
    that runs next refuses it anyway.
    """
    # Fast path, all in C: keep only the brackets outside strings, then peel the
    # innermost empty pairs once per level; a document as deep as the limit is gone
    # after `limit` passes, a shallow one after a few.
    skeleton = _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not skeleton:
            return False
        peeled = _EMPTY_PAIRS.sub(b"", skeleton)
        if len(peeled) == len(skeleton):
            return _deeper_by_scan(body, limit)  # unbalanced: invalid JSON
        skeleton = peeled
    return bool(skeleton)


def _deeper_by_scan(body: bytes, limit: int) -> bool:
    """The same answer token by token, for bodies whose brackets do not pair up: an
    invalid body may still open enough levels to exhaust the decoder's recursion."""
    depth = 0
    for match in _TOKENS.finditer(body):
        if match.start(1) >= 0:
            depth += 1
            if depth > limit:
                return True
        elif body[match.start()] != _QUOTE:
            depth -= 1
    return False


def check_json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise ``JsonTooDeep`` (400 json_too_deep) when ``body`` nests beyond ``limit``."""
    if json_depth_exceeds(body, limit):
        raise JsonTooDeep(f"the JSON body nests deeper than {limit} levels", limit=limit)
