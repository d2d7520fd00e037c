"""Server-sent events read line by line, as the HTML standard's parser reads them.

The appliance's event stream is read by the UI process and the tests; both feed
the lines of a streamed response here and get whole events back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return msgspec.json.decode(self.data) if self.data else None


@dataclass
class SseParser:
    """Feed it each line (without its line break); it answers an event at each blank
    line that ends one. Comments (keep-alives) and unknown fields are skipped."""

    last_id: str | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _seen_id: bool = False

    def feed(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
            self._seen_id = True
        return None

    def _dispatch(self) -> SseEvent | None:
        event_id = self.last_id if self._seen_id else None
        kind, data = self._event or "message", self._data
        self._event, self._data, self._seen_id = "", [], False
        if not data:
            return None
        return SseEvent(kind, "\n".join(data), event_id)
