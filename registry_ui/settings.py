"""What the registry UI process needs to know: the registry, where to listen, how often to poll."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RegistryUiSettings:
    registry_url: str = "http://127.0.0.1:8600"
    host: str = "127.0.0.1"
    port: int = 8081
    # Session-to-token map only (NiceGUI's user storage); volatile, mode 0700.
    storage_dir: Path = Path("var/run/registry-ui")
    # Set behind TLS so the browser never sends the session cookie in clear.
    secure_cookie: bool = False
    # How often the frame asks the registry whether it answers, and pages refresh.
    poll_s: float = 5.0
    request_timeout_s: float = 30.0
    # A CA bundle for a registry served over HTTPS with a private CA.
    ca_file: str = ""
