"""Where an artifact's bytes come from: its http(s) URL, or the fleet registry.

The appliance never talks to the WAN. A catalog artifact whose url is
``registry:<sha256>`` is fetched from the edge agent's blob relay, a unix socket
the agent serves on the node: the relay passes ``GET /blobs/<sha256>`` (and its Range)
to the registry's ``/api/v1/sync/blobs/<sha256>`` with the site secret, and the bytes
back. So the fetch itself is the one every artifact gets: resumable, capped, verified
before it is visible. The socket's path is the appliance's configuration, not
something the agent tells it.
"""

from __future__ import annotations

import stat
from pathlib import Path

from appliance.backends.artifacts.http_fetch import Wanted
from appliance.catalog.model import ArtifactRef
from appliance.services.sync import SyncStatusBoard
from towerbox_core.api.blobs import REGISTRY_SCHEME
from towerbox_core.errors import BackendUnavailable

UNAVAILABLE = "artifact_origin_unavailable"
RELAY_HOST = "towerbox-agent"  # the Host of requests over the socket; names it in errors


def is_registry_source(url: str | None) -> bool:
    return url is not None and url.startswith(REGISTRY_SCHEME)


class ArtifactOrigins:
    def __init__(self, relay_socket: str, sync: SyncStatusBoard) -> None:
        self.relay_socket = relay_socket
        self.sync = sync

    def wanted(self, ref: ArtifactRef) -> Wanted:
        """What to fetch for ``ref``; refuses a registry blob the node cannot reach."""
        if not is_registry_source(ref.url):
            return Wanted(ref.name, ref.url or "", ref.sha256, ref.size)
        self.check_registry(ref.name)
        return Wanted(
            ref.name,
            f"http://{RELAY_HOST}/blobs/{ref.sha256}",
            ref.sha256,
            ref.size,
            socket=self.relay_socket,
        )

    def check_registry(self, name: str) -> None:
        """The node has a fleet registry to fetch from: an enrolled agent that reports,
        and its relay socket in place."""

        def unavailable(why: str) -> BackendUnavailable:
            return BackendUnavailable(
                f"artifact {name} comes from the fleet registry, but {why}",
                code=UNAVAILABLE,
                artifact=name,
            )

        if not self.relay_socket:
            raise unavailable("[artifacts] registry_relay is empty: this node has no relay")
        report, running = self.sync.agent()
        if report is None:
            raise unavailable(
                "the edge agent has never reported: enroll it (towerbox agent enroll) and "
                "start towerbox-agent"
            )
        if not running:
            raise unavailable("the edge agent is not running (it stopped reporting)")
        try:
            is_socket = stat.S_ISSOCK(Path(self.relay_socket).stat().st_mode)
        except OSError:
            is_socket = False
        if not is_socket:
            raise unavailable(
                f"the edge agent's relay socket {self.relay_socket} is not there (the agent's "
                "relay_socket must name the same path)"
            )
