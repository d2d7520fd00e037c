"""What the UI process needs to know: where the appliance is, where to listen, how often to poll."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UiSettings:
    appliance_url: str = "http://127.0.0.1:8443"
    host: str = "127.0.0.1"
    port: int = 8080
    # Session-to-token map only (NiceGUI's user storage); volatile, mode 0700.
    storage_dir: Path = Path("var/run/ui")
    # Set behind TLS so the browser never sends the session cookie in clear.
    secure_cookie: bool = False
    # Polling intervals while the event stream is down (live, every ui.live.SAFETY_S):
    # live state (VM list) and the frame (health, alerts, WAN banner).
    live_poll_s: float = 1.0
    frame_poll_s: float = 3.0
    request_timeout_s: float = 30.0
