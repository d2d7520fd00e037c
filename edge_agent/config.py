"""The agent's configuration: a TOML file, every key overridable by environment.

``TOWERBOX_AGENT_<KEY>`` overrides ``key``; ``TOWERBOX_AGENT_CONFIG`` names the file
(default /etc/towerbox/agent.toml). The site and its secret are not configuration:
enrollment writes them, with the registry's URL, to the state file. ``registry_url``
here serves zero-touch enrollment only (edge_agent.provision).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from towerbox_core.config import build, read_toml
from towerbox_core.errors import ConfigError
from towerbox_core.wire import MAX_BATCH_ENTRIES

DEFAULT_CONFIG_PATH = Path("/etc/towerbox/agent.toml")
ENV_PREFIX = "TOWERBOX_AGENT_"


@dataclass(frozen=True)
class AgentConfig:
    # "unix:/run/towerbox/appliance.sock" or "http://127.0.0.1:8443".
    appliance_url: str = "unix:/run/towerbox/appliance.sock"
    # A sync-agent token (`towerbox agent token`), mode 0600, owned by the agent's user.
    token_file: str = "/etc/towerbox/agent-token"  # noqa: S105 - a path
    # Root's CLI token of the appliance (its state_dir/cli-token): `towerbox agent
    # token` makes the agent's token with it. The running agent never reads it.
    appliance_cli_token_file: str = "/var/lib/towerbox/cli-token"  # noqa: S105 - a path
    state_dir: str = "/var/lib/towerbox-agent"
    # A CA bundle for the registry's TLS; "" uses the one given at enrollment, if any.
    ca_file: str = ""
    heartbeat_s: float = 15.0
    poll_s: float = 1.0  # how often an idle journal pump looks for new entries
    batch_size: int = MAX_BATCH_ENTRIES
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    request_timeout_s: float = 30.0
    log_level: str = "INFO"
    # The blob relay: the appliance fetches "registry:<sha256>" artifacts through this
    # unix socket (its [artifacts] registry_relay names the same path). "": no relay.
    relay_socket: str = "/run/towerbox-agent/blobs.sock"
    # Zero-touch enrollment (docs/enrollment.md): when the node is not enrolled yet and
    # a provisioning credential file (0600) is set, `agent run` enrolls itself at
    # registry_url by proving hardware_id, or the first line of hardware_id_file.
    provisioning_token_file: str = ""
    registry_url: str = ""
    registry_ca_file: str = ""
    hardware_id: str = ""
    hardware_id_file: str = "/etc/machine-id"
    # How long to wait after the registry refused (the identity is not listed yet).
    provision_refused_retry_s: float = 300.0

    @property
    def state_file(self) -> Path:
        return Path(self.state_dir) / "enrollment.json"

    def check(self) -> AgentConfig:
        if not 1 <= self.batch_size <= MAX_BATCH_ENTRIES:
            raise ConfigError(f"batch_size must be 1 to {MAX_BATCH_ENTRIES}", field="batch_size")
        for key in (
            "heartbeat_s",
            "poll_s",
            "backoff_base_s",
            "backoff_cap_s",
            "provision_refused_retry_s",
        ):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0", field=key)
        if self.backoff_cap_s < self.backoff_base_s:
            raise ConfigError("backoff_cap_s must be ≥ backoff_base_s", field="backoff_cap_s")
        if not self.appliance_url.startswith(("unix:", "http://", "https://")):
            raise ConfigError(
                "appliance_url must be unix:PATH, http:// or https://", field="appliance_url"
            )
        if self.registry_url and not self.registry_url.startswith(("https://", "http://")):
            raise ConfigError("registry_url must be https:// (or http://)", field="registry_url")
        return self


def load_agent_config(
    path: Path | None = None, env: Mapping[str, str] | None = None
) -> AgentConfig:
    env = os.environ if env is None else env
    if path is None:
        path = Path(env.get(ENV_PREFIX + "CONFIG", str(DEFAULT_CONFIG_PATH)))
    cfg: AgentConfig = build(
        AgentConfig, read_toml(path, "agent config"), env, ENV_PREFIX, str(path)
    )
    return cfg.check()
