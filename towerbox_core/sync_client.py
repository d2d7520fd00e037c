"""The synchronous API client, on the standard library's ``http.client``.

Command lines (``towerbox vm list``, the agent's enrol) make one or two calls and
exit; importing httpx and building its TLS context cost them more than the call
itself, so the sync client needs neither. The async client (UI, agent) stays on httpx
in ``towerbox_core.client``; both decode problem answers with ``problem_from``.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from towerbox_core.errors import InvalidInput, TowerboxError

if TYPE_CHECKING:
    import ssl

UNIX = "unix:"


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Verify the far end against ``ca_file`` only, or the system's CAs when empty."""
    import ssl  # a plain-HTTP or unix-socket call never needs it

    ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class ApiError(TowerboxError):
    """A problem answer from a Towerbox API, carried back with its status and code."""

    def __init__(
        self, status: int, code: str, message: str, problem: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.problem = problem if problem is not None else {}

    @property
    def field(self) -> str | None:
        """The request field the server blamed, for a form to show it at the field."""
        value = self.problem.get("field")
        return str(value) if value is not None else None

    @property
    def text(self) -> str:
        """The detail with its code, the way the CLI and the UI print it."""
        return f"{self.message} [{self.code}]"


def problem_from(status: int, reason: str, body: Any, text: str) -> dict[str, Any]:
    """The problem document of an error answer (``body`` its decoded JSON, if any);
    one made up from the status when it sent none."""
    if isinstance(body, dict) and "code" in body:
        return body
    return {
        "code": f"http_{status}",
        "detail": text[:200] or reason or f"HTTP {status}",
        "status": status,
    }


def api_error(status: int, problem: dict[str, Any]) -> ApiError:
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    return ApiError(status, str(problem["code"]), detail, problem)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket; ``host`` only goes in the Host header."""

    def __init__(self, path: str, timeout: float, host: str = "appliance") -> None:
        super().__init__(host, timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ApiClient:
    """A synchronous client: ``request`` answers the body or raises ``ApiError``; a
    daemon it cannot reach is a ``TowerboxError`` with ``unreachable_code`` that names
    the URL (or socket) it tried."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 120.0,
        ca_file: str = "",
        what: str = "the appliance",
        unreachable_code: str = "appliance_unreachable",
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._what = what
        self._unreachable_code = unreachable_code
        self._prefix = ""  # a base URL's path ("https://host/node1" -> "/node1")
        self._conn = self._connection(timeout, ca_file)

    def _connection(self, timeout: float, ca_file: str) -> http.client.HTTPConnection:
        if self.url.startswith(UNIX):
            return UnixHTTPConnection(self.url.removeprefix(UNIX), timeout)
        parts = urlsplit(self.url)
        self._prefix = parts.path
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=timeout, context=tls_context(ca_file)
            )
        if parts.scheme != "http":
            raise InvalidInput(
                f"{self.url} is not an http://, https:// or unix:/path URL",
                code="invalid_url",
            )
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        target = self._prefix + path
        if params:
            target += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            headers["Content-Type"] = "application/json"
        try:
            self._conn.request(method, target, body=body, headers=headers)
            resp = self._conn.getresponse()
            content = resp.read()
        except (OSError, http.client.HTTPException) as err:
            self._conn.close()
            raise TowerboxError(
                f"cannot reach {self._what} at {self.url}: {err}", code=self._unreachable_code
            ) from err
        return _answer(resp.status, resp.reason, resp.getheader("content-type", ""), content)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _answer(status: int, reason: str, content_type: str, content: bytes) -> Any:
    text = content.decode(errors="replace")
    if status >= 400:
        try:
            body = jsonlib.loads(text) if content else None
        except ValueError:
            body = None
        raise api_error(status, problem_from(status, reason, body, text))
    if status == 204 or not content:
        return None
    if content_type.startswith("text/"):
        return text
    if "json" in content_type:
        return jsonlib.loads(text)
    return text
