"""What the `towerbox` entry point keeps out of every process it starts."""

from __future__ import annotations

import subprocess
import sys

# The three daemons' modules, loaded the way `towerbox <group>` loads them.
LOAD = """
import sys
from towerbox_cli.main import main
import httpx, appliance.daemon, edge_agent.runner, ui.app
print(" ".join(sorted(m for m in ("rich", "pygments", "httpx._main") if sys.modules.get(m))))
with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(204))) as client:
    print(client.get("http://node/healthz").status_code)
"""


def test_the_daemons_load_httpx_without_its_command_line_client() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LOAD], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert out == ["", "204"], out
