"""Provisioning credentials, site identities, re-binding (operators) and
``POST /api/v1/provision`` (nodes, with a provisioning credential).

``/provision`` is outside operator authentication: the credential in its
Authorization header is what authenticates it. Refusals are logged with their code
and charged to the caller's address; an address that keeps failing is answered 429
for a while, so credentials cannot be guessed at speed (each worker counts its own).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from registry.api.auth import OperatorRequest
from registry.api.deps import RegistryDep
from towerbox_core.api.provisioning import (
    ProvisioningCredentialCreate,
    ProvisioningCredentialCreated,
    ProvisioningCredentialList,
    ProvisionReply,
    ProvisionRequest,
    RebindReply,
    RebindRequest,
    SiteEpochs,
    SiteIdentityInfo,
    SiteIdentitySet,
)
from towerbox_core.api_params import RowIdPath
from towerbox_core.errors import TowerboxError
from towerbox_core.openapi_problems import problem_responses

log = logging.getLogger(__name__)


class TooManyAttempts(TowerboxError):
    code = "too_many_attempts"
    status = 429


class ProvisioningController(Controller):
    path = "/api/v1"
    tags = ("provisioning",)

    @post("/provisioning-credentials", sync_to_thread=True, status_code=HTTP_201_CREATED)
    def create_credential(
        self,
        request: OperatorRequest,
        data: JSONBody[ProvisioningCredentialCreate],
        registry: RegistryDep,
    ) -> ProvisioningCredentialCreated:
        request.user.require_write()
        return registry.provisioning.credentials.create(data, request.user.username)

    @get("/provisioning-credentials", sync_to_thread=True)
    def list_credentials(self, registry: RegistryDep) -> ProvisioningCredentialList:
        return registry.provisioning.credentials.list()

    @delete(
        "/provisioning-credentials/{credential_id:int}",
        sync_to_thread=True,
        status_code=HTTP_204_NO_CONTENT,
    )
    def revoke_credential(
        self, request: OperatorRequest, credential_id: RowIdPath, registry: RegistryDep
    ) -> None:
        request.user.require_write()
        registry.provisioning.credentials.revoke(credential_id)

    @put("/sites/{name:str}/identity", sync_to_thread=True)
    def set_identity(
        self,
        request: OperatorRequest,
        name: FromPath[str],
        data: JSONBody[SiteIdentitySet],
        registry: RegistryDep,
    ) -> SiteIdentityInfo:
        request.user.require_write()
        return registry.provisioning.set_identity(name, data.hardware_id, data.replacement)

    @get("/sites/{name:str}/identity", sync_to_thread=True)
    def identities(self, name: FromPath[str], registry: RegistryDep) -> list[SiteIdentityInfo]:
        return registry.provisioning.identities(name)

    @post("/sites/{name:str}/rebind", sync_to_thread=True, status_code=HTTP_200_OK)
    def rebind(
        self,
        request: OperatorRequest,
        name: FromPath[str],
        registry: RegistryDep,
        data: JSONBody[RebindRequest | None] = None,
    ) -> RebindReply:
        request.user.require_write()
        body = data or RebindRequest()
        return registry.provisioning.rebind(name, body.hardware_id, body.token_ttl_s)

    @get("/sites/{name:str}/epochs", sync_to_thread=True)
    def epochs(self, name: FromPath[str], registry: RegistryDep) -> SiteEpochs:
        detail = registry.sites.detail(registry.sites.get(name))
        return SiteEpochs(site=name, epoch=detail.epoch, epochs=detail.epochs)

    @post(
        "/provision",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        responses=problem_responses(401, 403, 409, 429),
    )
    def provision(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ProvisionRequest],
        registry: RegistryDep,
    ) -> ProvisionReply:
        """A new node enrolls itself: ``Authorization: Bearer tbp_...`` (a provisioning
        credential, no operator token) and the hardware identity it proves. Answers
        the site and its secret, as /api/v1/enroll does."""
        client = request.client.host if request.client else "local"
        wait = registry.provisioning.attempts.take(client)
        if wait:
            log.warning("provisioning attempts from %s are throttled", client)
            raise TooManyAttempts(
                f"too many provisioning attempts from this address; retry in {math.ceil(wait)} s"
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        try:
            return registry.provisioning.provision(token, data.hardware_id, data.hostname)
        except TowerboxError as err:
            if err.status < 500:
                log.warning(
                    "provisioning refused (%s) for hardware id %r from %s: %s",
                    err.code,
                    data.hardware_id[:128],
                    client,
                    err.message,
                )
            raise
