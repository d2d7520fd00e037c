"""The status of the response an ASGI app sends, for middlewares that act on it."""

from __future__ import annotations

from litestar.types import Message, Send


class StatusRecorder:
    """A ``send`` that passes every message on and keeps the response's status."""

    def __init__(self, send: Send, default: int) -> None:
        self._send = send
        self.status = default  # until the app starts a response

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)
