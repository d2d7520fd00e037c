"""``--value KEY=VALUE`` words as a request's values, typed the way a shell user means.

A value that reads as JSON (``42``, ``true``, ``["a", "b"]``) is sent as that, anything
else as a string, so ``--value model=llama-3-8b`` needs no quoting and a list or an
integer value can be given at all. A string that looks like a number is quoted:
``--value 'tag="42"'``. The node checks each value against its catalog entry's
declaration and names the field it refuses.
"""

from __future__ import annotations

import json
from typing import Any

from towerbox_core.errors import InvalidInput


def typed(text: str) -> Any:
    """``text`` as JSON when it is a string, integer, boolean or list; else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | bool | list) else text


def value_words(words: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` words as the request's values; repeating a key is refused."""
    values: dict[str, Any] = {}
    for word in words:
        key, sep, text = word.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--value {word!r} is not KEY=VALUE", code="invalid_argument")
        if key in values:
            raise InvalidInput(f"--value {key} is given twice", code="invalid_argument")
        values[key] = typed(text)
    return values
