"""Browser sessions mapped to appliance tokens, and the API as the signed-in user sees it.

The session cookie (Starlette's, signed with the process's storage secret, HttpOnly,
SameSite=Strict) names an entry of NiceGUI's user storage; that entry holds the
appliance token and nothing else of value. The appliance decides what the token may do.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from nicegui import app, ui

from ui.api import ApiError, ApplianceApi

_KEYS = ("token", "username", "role", "tenant")


@dataclass(frozen=True)
class Session:
    token: str
    username: str
    role: str
    tenant: str | None

    @property
    def infra_admin(self) -> bool:
        return self.role == "infra-admin"


def current() -> Session | None:
    data = app.storage.user
    token = data.get("token")
    if not isinstance(token, str) or not token:
        return None
    return Session(
        token=token,
        username=str(data.get("username", "")),
        role=str(data.get("role", "")),
        tenant=data.get("tenant"),
    )


def sign_in(token: str, me: dict[str, Any]) -> None:
    app.storage.user.update(
        token=token, username=me.get("username"), role=me.get("role"), tenant=me.get("tenant")
    )


def sign_out() -> None:
    for key in _KEYS:
        app.storage.user.pop(key, None)


class UserApi:
    """The appliance API with this session's token; a 401 ends the session."""

    def __init__(self, api: ApplianceApi, session: Session) -> None:
        self.api = api
        self.session = session

    async def call(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        pending = self.api.request(method, path, self.session.token, json=json, params=params)
        return await self._signed_in(pending)

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params or None)

    async def get_shared(self, path: str, since: float | None = None) -> Any:
        """A GET that every open page of the frame polls: shared between them; with
        ``since`` (time.monotonic()), one read after that time."""
        return await self._signed_in(self.api.shared_get(path, self.session.token, since))

    async def _signed_in(self, pending: Awaitable[Any]) -> Any:
        try:
            return await pending
        except ApiError as err:
            if err.status == 401:
                # The token expired or was revoked: back to the login page.
                sign_out()
                ui.navigate.to("/login")
            raise

    async def post(self, path: str, json: Any = None) -> Any:
        return await self.call("POST", path, json=json)

    async def delete(self, path: str) -> Any:
        return await self.call("DELETE", path)


def notify_error(err: ApiError, doing: str) -> None:
    ui.notify(f"{doing} failed: {err.text}", type="negative", multi_line=True, timeout=8000)
