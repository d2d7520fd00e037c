"""A small synchronous client of the appliance API, for the CLI and scripts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from appliance.config import Config
from appliance.errors import TowerboxError


class ApiError(TowerboxError):
    """A problem response from the appliance, carried back with its code."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(
            str(problem.get("detail", f"HTTP {status}")),
            code=str(problem.get("code", "http_error")),
        )
        self.status = status
        self.problem = problem


def find_token(cfg: Config) -> str | None:
    token = os.environ.get("TOWERBOX_TOKEN")
    if token:
        return token.strip()
    for path in (Path.home() / ".config" / "towerbox" / "token", cfg.cli_token_file):
        try:
            return path.read_text().strip()
        except OSError:
            continue
    return None


class ApplianceClient:
    def __init__(
        self, cfg: Config, url: str | None = None, token: str | None = None, timeout: float = 120.0
    ) -> None:
        token = token or find_token(cfg)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if url:
            self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)
        elif Path(cfg.api.socket).exists():
            self._http = httpx.Client(
                transport=httpx.HTTPTransport(uds=cfg.api.socket),
                base_url="http://appliance",
                headers=headers,
                timeout=timeout,
            )
        else:
            self._http = httpx.Client(
                base_url=f"http://{cfg.api.host}:{cfg.api.port}", headers=headers, timeout=timeout
            )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise TowerboxError(
                f"cannot reach the appliance: {err}", code="appliance_unreachable"
            ) from err
        if resp.status_code >= 400:
            try:
                problem = resp.json()
            except ValueError:
                problem = {"detail": resp.text, "code": "http_error"}
            raise ApiError(resp.status_code, problem)
        if resp.status_code == 204 or not resp.content:
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.text

    def close(self) -> None:
        self._http.close()
