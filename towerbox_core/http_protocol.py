"""uvicorn's HTTP protocol with deadlines for a request's headers and body.

uvicorn times out idle keep-alive connections but waits forever for a request being
sent: a slow-loris client holds a connection (and one slot under
``limit_concurrency``) for as long as it trickles bytes, into its headers or into the
body it declared. Here a connection that has not finished a request's headers within
the header deadline is closed, and a request whose body falls behind the body
deadline gets 408 ``body_timeout`` and its connection is closed.

A request that is not valid HTTP (a Content-Length that is not a number, say) is
refused before the application sees it; its 400 is a problem document like every
other error, not uvicorn's plain text.

Nagle's algorithm is turned off on every TCP connection: asyncio's own loop does so
only for a socket whose protocol number says TCP, which a socket made as
``socket.socket(AF_INET)`` (the appliance's, uvicorn's) does not (uvloop does it
always). With it on, an answer after the first on a keep-alive connection waited
some 40 ms for the client's delayed ACK before its body went out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import msgspec
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from towerbox_core.problems import PROBLEM_JSON, problem_body

log = logging.getLogger(__name__)

# The body deadline is an allowance of time rather than a fixed time, for the
# registry's sake: a blob upload may be many GiB over a site's slow WAN, where no fixed
# time fits both it and a 1 KiB request. The allowance starts at ``body_timeout_s``,
# runs down while the server waits on the client, and every byte received adds
# 1/``body_min_bytes_per_s`` seconds back, up to ``body_timeout_s`` again. So a body
# may stall for at most ``body_timeout_s`` in all (a WAN hiccup, TCP's retransmission
# backoff) and must otherwise average ``body_min_bytes_per_s``: 1 GiB at 1 KiB/s or
# faster is never cut, while a byte every few seconds is cut after about
# ``body_timeout_s``. A slow-loris client then holds a connection only for as long as
# it pays the minimum rate in real bandwidth. With a rate of 0 (the appliance, whose
# bodies are at most 1 MiB) the whole body must arrive within ``body_timeout_s``.
#
# The clock stops while the client is not the one holding the request up: while
# uvicorn has paused reading (64 KiB wait for an application that reads slowly, a
# blob being written to disk, or a pipelined request waits for the one before it) and
# while the client waits for ``100 Continue``. Once the application has answered, the
# rest of the body is the header deadline's (it is armed again for the next request).
# A request without a body is complete with its headers: no clock, so an event
# stream's never-ending answer is never cut.


class _WatchedFlow(FlowControl):
    """uvicorn's flow control, telling the body clock when reading pauses or resumes
    (before, so the time so far counts as it was, and after, for what follows)."""

    def __init__(self, transport: asyncio.Transport, changed: Callable[[], None]) -> None:
        super().__init__(transport)
        self._changed = changed

    def pause_reading(self) -> None:
        self._changed()
        super().pause_reading()
        self._changed()

    def resume_reading(self) -> None:
        # Also called, reading or not, right after a request's 100 Continue is sent.
        self._changed()
        super().resume_reading()
        self._changed()


def no_nagle(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY on a TCP connection's socket (a unix socket has no Nagle)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DeadlineProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0
    body_timeout_s = 30.0
    body_min_bytes_per_s = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        # The body clock, while a request's body is being received (see above).
        self._body_cycle: RequestResponseCycle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_left_s = 0.0  # the allowance
        self._body_at = 0.0  # loop time the allowance was last brought up to date
        self._body_counting = False  # whether the clock ran since then

    # The header deadline.

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

    # The body clock.

    def _start_body_clock(self) -> None:
        self._body_left_s = self.body_timeout_s
        self._body_at = self.loop.time()
        self._body_counting = self._waiting_on_client()
        self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_tick)

    def _stop_body_clock(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._body_cycle = None

    def _waiting_on_client(self) -> bool:
        cycle = self._body_cycle
        return (
            cycle is not None and not self.flow.read_paused and not cycle.waiting_for_100_continue
        )

    def _settle(self) -> None:
        """Run the allowance down by the time since it was last brought up to date, if
        the clock ran, and note whether it runs from now on."""
        if self._body_timer is None:
            return  # no body on its way, or its clock not started yet
        now = self.loop.time()
        if self._body_counting:
            self._body_left_s -= now - self._body_at
        self._body_at = now
        self._body_counting = self._waiting_on_client()

    def _body_tick(self) -> None:
        self._settle()
        if self._body_counting and self._body_left_s <= 0:
            self._body_expired()
            return
        # Not late, ever: the allowance runs down no faster than the clock.
        wait = self._body_left_s if self._body_counting else max(self._body_left_s, 1.0)
        self._body_timer = self.loop.call_later(wait, self._body_tick)

    def _body_expired(self) -> None:
        cycle = self._body_cycle
        self._stop_body_clock()
        if cycle is None or self.transport.is_closing():
            return
        rate = self.body_min_bytes_per_s
        if rate > 0:
            detail = f"fell behind {rate:.0f} bytes/s by more than {self.body_timeout_s:g} s"
        else:
            detail = f"did not arrive within {self.body_timeout_s:g} s"
        log.info("408 for a request body that %s", detail)
        if cycle.response_started:  # an answer is on its way: too late for a 408
            self.transport.close()
            return
        self._send_problem(
            408,
            "body_timeout",
            f"the request body {detail}; send it without pausing",
            timeout_s=self.body_timeout_s,
            min_bytes_per_s=rate,
        )
        # The application waiting for the body hears a disconnect; what it answers
        # is not written after the 408.
        cycle.disconnected = True
        cycle.message_event.set()

    # uvicorn's protocol.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_nagle(transport)
        super().connection_made(transport)
        self.flow = _WatchedFlow(transport, self._settle)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self.parser.should_upgrade() and self._should_upgrade():
            return  # a WebSocket: no body, and another protocol takes the connection
        self._stop_body_clock()
        # Not armed yet: a request without a body completes in this same feed, before
        # data_received returns (and arms it for a body still to come).
        self._body_cycle = self.cycle

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._body_cycle is not None and self._body_timer is None:
            self._start_body_clock()

    def on_body(self, body: bytes) -> None:
        if self._body_timer is not None:
            self._settle()
            rate = self.body_min_bytes_per_s
            if rate > 0:
                gained = self._body_left_s + len(body) / rate
                self._body_left_s = min(self.body_timeout_s, gained)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._stop_body_clock()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._body_cycle is not None and self._body_cycle.response_complete:
            self._stop_body_clock()  # answered before its body ended: see above
        super().on_response_complete()
        # The next request on this keep-alive connection, unless one is in already
        # (pipelined: its headers are complete).
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._arm()

    def send_400_response(self, msg: str) -> None:
        self._send_problem(400, "invalid_http", f"{msg} Send valid HTTP/1.1.")

    def _send_problem(self, status: int, code: str, detail: str, **extra: Any) -> None:
        """A problem document written straight to the client, then the connection closed."""
        body = msgspec.json.encode(problem_body(status, code, detail, **extra))
        head = [STATUS_LINE[status]]
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
        self._stop_body_clock()
        super().connection_lost(exc)


# uvicorn's ``http`` option as an import path: it survives the pickling that starts
# the workers of a multi-process server, where a class made at run time would not.
PROTOCOL_PATH = f"{__name__}:DeadlineProtocol"


def set_deadlines(header_s: float, body_s: float, body_min_bytes_per_s: float) -> str:
    """Set this process's deadlines for a request's headers and body (see above);
    returns uvicorn's ``http`` option. One process serves one server, so the deadlines
    are the process's."""
    DeadlineProtocol.header_timeout_s = header_s
    DeadlineProtocol.body_timeout_s = body_s
    DeadlineProtocol.body_min_bytes_per_s = body_min_bytes_per_s
    return PROTOCOL_PATH
