"""uvicorn's HTTP protocol with a deadline for a request's headers.

uvicorn times out idle keep-alive connections but waits forever for the headers of a
request being sent: a slow-loris client holds a connection (and one slot under
``limit_concurrency``) for as long as it trickles bytes. Here a connection that has
not finished a request's headers within the deadline is closed.

A request that is not valid HTTP (a Content-Length that is not a number, say) is
refused before the application sees it; its 400 is a problem document like every
other error, not uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from towerbox_core.problems import PROBLEM_JSON, problem_body

log = logging.getLogger(__name__)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expired(self) -> None:
        self._header_deadline = None
        log.info(
            "closing a connection that sent no complete headers in %.0f s", self.header_timeout_s
        )
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this keep-alive connection

    def send_400_response(self, msg: str) -> None:
        body = msgspec.json.encode(problem_body(400, "invalid_http", f"{msg} Send valid HTTP/1.1."))
        head = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            f"content-type: {PROBLEM_JSON}\r\n".encode(),
            f"content-length: {len(body)}\r\n".encode(),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


# uvicorn's ``http`` option as an import path: it survives the pickling that starts
# the workers of a multi-process server, where a class made at run time would not.
PROTOCOL_PATH = f"{__name__}:HeaderDeadlineProtocol"


def set_header_timeout(seconds: float) -> str:
    """Set this process's header deadline; returns uvicorn's ``http`` option. One
    process serves one server, so the deadline is the process's."""
    HeaderDeadlineProtocol.header_timeout_s = seconds
    return PROTOCOL_PATH
