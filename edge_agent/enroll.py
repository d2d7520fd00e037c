"""Trading a one-time enrollment token for the site's secret."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import msgspec

from edge_agent.config import AgentConfig
from edge_agent.errors import Refused, Unreachable
from edge_agent.state import Enrollment, check_room, save_enrollment
from towerbox_core.api.fleet import EnrollReply
from towerbox_core.client import decode_problem, tls_context
from towerbox_core.errors import TowerboxError


def enroll(cfg: AgentConfig, url: str, token: str, ca_file: str = "") -> Enrollment:
    url = url.rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise TowerboxError(
            f"registry URL must be https:// (or http://), not {url!r}", code="invalid_url"
        )
    ca = str(Path(ca_file).resolve()) if ca_file else ""
    body = {"token": token, "hostname": socket.gethostname()}
    check_room(cfg.state_file)
    try:
        with httpx.Client(timeout=cfg.request_timeout_s, verify=tls_context(ca)) as client:
            resp = client.post(f"{url}/api/v1/enroll", json=body)
    except httpx.HTTPError as err:
        raise Unreachable("registry", f"{type(err).__name__}: {err}") from err
    if resp.status_code >= 400:
        raise Refused("registry", resp.status_code, decode_problem(resp))
    try:
        answer = msgspec.json.decode(resp.content, type=EnrollReply)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise Unreachable("registry", f"an enrollment answer we cannot read: {err}") from err
    enrollment = Enrollment(registry_url=url, site=answer.site, secret=answer.secret, ca_file=ca)
    save_enrollment(cfg.state_file, enrollment)
    return enrollment
