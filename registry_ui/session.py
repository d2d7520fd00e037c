"""Browser sessions mapped to operator tokens, and the registry as the operator sees it.

The session cookie (signed with the process's storage secret, HttpOnly,
SameSite=Strict) names an entry of NiceGUI's user storage that holds the registry
token, the username and the role. The role only decides which controls a page
draws; the registry refuses a viewer's writes whatever the page sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nicegui import app, ui

from registry_ui.api import ApiError, RegistryApi

# One entry in the user's storage: nothing of it is left behind on logout.
_KEY = "operator"


@dataclass(frozen=True)
class Operator:
    token: str
    username: str
    role: str  # admin | viewer: which controls the pages draw

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def current() -> Operator | None:
    entry = app.storage.user.get(_KEY)
    if not isinstance(entry, dict) or not entry.get("token"):
        return None
    return Operator(str(entry["token"]), str(entry.get("username", "")), str(entry.get("role", "")))


def sign_in(token: str, identity: dict[str, Any]) -> None:
    app.storage.user[_KEY] = {
        "token": token,
        "username": identity.get("username"),
        "role": identity.get("role"),
    }


def sign_out() -> None:
    app.storage.user.pop(_KEY, None)


class OperatorApi:
    """The registry API with this session's token; a 401 ends the session."""

    def __init__(self, api: RegistryApi, operator: Operator) -> None:
        self.api = api
        self.operator = operator

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            return await self.api.request(
                method, path, self.operator.token, json=json, params=params, headers=headers
            )
        except ApiError as err:
            if err.status == 401:
                # The token expired or was revoked: back to the login page. A page left
                # open from before a logout must not sign out whoever logged in since.
                now = current()
                if now is not None and now.token == self.operator.token:
                    sign_out()
                ui.navigate.to("/login")
            raise

    async def get(self, path: str, params: Any = None) -> Any:
        return await self.call("GET", path, params=params)


def notify_error(err: ApiError, doing: str) -> None:
    ui.notify(f"{doing} failed: {err.text}", type="negative", multi_line=True, timeout=8000)
