"""Zero-touch enrollment: a node that is not enrolled yet enrolls itself.

An installer (cloud-init, a kickstart, an image build) drops agent.toml with the
registry's URL and the path of a provisioning credential. On its first start the
agent proves the node's hardware identity (its machine-id, or a DMI serial) with that
credential and gets its site and secret, written to the state file like a manual
``towerbox agent enroll``. Until then it retries: with backoff while the registry
cannot be reached, slowly while it refuses (the operator may list the identity
later), and never exits, so systemd does not crash-loop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path

import msgspec

from edge_agent.backoff import Backoff
from edge_agent.config import AgentConfig
from edge_agent.errors import Refused, Unreachable
from edge_agent.http import call
from edge_agent.state import Enrollment, check_room, save_enrollment
from towerbox_core.api.provisioning import ProvisionReply, ProvisionRequest
from towerbox_core.client import async_http
from towerbox_core.errors import ConfigError, StorageFull

log = logging.getLogger(__name__)


def hardware_id(cfg: AgentConfig) -> str:
    """The identity the node proves: ``hardware_id`` as configured, else the first line
    of ``hardware_id_file`` (/etc/machine-id, or /sys/class/dmi/id/product_serial)."""
    if cfg.hardware_id:
        return cfg.hardware_id
    path = Path(cfg.hardware_id_file)
    try:
        lines = path.read_text().strip().splitlines()
    except OSError as err:
        raise ConfigError(
            f"cannot read the hardware identity from {path}: {err.strerror}; set "
            "hardware_id or hardware_id_file in agent.toml",
            code="no_hardware_id",
            field="hardware_id_file",
        ) from err
    if not lines or not lines[0].strip():
        raise ConfigError(
            f"{path} is empty: no hardware identity to prove; set hardware_id or "
            "hardware_id_file in agent.toml",
            code="no_hardware_id",
            field="hardware_id_file",
        )
    return lines[0].strip()


def _read_credential(path: Path) -> str:
    try:
        credential = path.read_text().strip()
    except OSError as err:
        raise ConfigError(
            f"cannot read the provisioning credential {path}: {err.strerror}",
            code="no_provisioning_credential",
            field="provisioning_token_file",
        ) from err
    if path.stat().st_mode & 0o077:
        raise ConfigError(
            f"{path} holds a provisioning credential and must be mode 0600",
            code="insecure_token_file",
            field="provisioning_token_file",
        )
    return credential


def wants_provisioning(cfg: AgentConfig) -> bool:
    """Not enrolled yet, and a provisioning credential is configured."""
    return bool(cfg.provisioning_token_file) and not cfg.state_file.exists()


async def provision(cfg: AgentConfig, stop: asyncio.Event) -> Enrollment | None:
    """Enroll with the provisioning credential; None when stopped before it could."""
    if not cfg.registry_url:
        raise ConfigError(
            "provisioning_token_file is set but registry_url is not: the agent cannot "
            "know where to enroll",
            code="no_registry_url",
            field="registry_url",
        )
    # Read once: a credential file with the wrong mode or missing is a configuration
    # error the installer must fix, not something to retry.
    credential = _read_credential(Path(cfg.provisioning_token_file))
    identity = hardware_id(cfg)
    url = cfg.registry_url.rstrip("/")
    ca = str(Path(cfg.registry_ca_file).resolve()) if cfg.registry_ca_file else ""
    body = msgspec.json.encode(ProvisionRequest(identity, socket.gethostname()))
    backoff = Backoff(cfg.backoff_base_s, cfg.backoff_cap_s)
    log.info("not enrolled: provisioning at %s as hardware id %s", url, identity)
    async with async_http(
        url, token=credential, timeout=cfg.request_timeout_s, ca_file=ca
    ) as client:
        while not stop.is_set():
            try:
                # Before the registry binds the identity: a secret that cannot be saved
                # would leave the identity claimed by a node that lost its secret.
                check_room(cfg.state_file)
                resp = await call(
                    client,
                    "registry",
                    "POST",
                    "/api/v1/provision",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                reply = msgspec.json.decode(resp.content, type=ProvisionReply)
            except Unreachable as err:
                delay = backoff.next_delay()
                log.warning("provisioning: %s; retrying in %.1f s", err.message, delay)
            except Refused as err:
                delay = cfg.provision_refused_retry_s
                # The message carries the status and the code (identity_not_allowed,
                # provisioning_credential_expired, ...): what the operator must fix.
                log.error("provisioning: %s; retrying in %.0f s", err.message, delay)
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                delay = backoff.next_delay()
                log.warning("provisioning: an answer we cannot read: %s", err)
            except StorageFull as err:
                delay = backoff.next_delay()
                log.error("provisioning: %s; retrying in %.1f s", err.message, delay)
            else:
                enrollment = Enrollment(
                    registry_url=url, site=reply.site, secret=reply.secret, ca_file=ca
                )
                save_enrollment(cfg.state_file, enrollment)
                log.info(
                    "provisioned: site %s%s, journal epoch %d; state in %s",
                    reply.site,
                    " (created from the credential's allow-list)" if reply.created else "",
                    reply.epoch,
                    cfg.state_file,
                )
                return enrollment
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    return None
