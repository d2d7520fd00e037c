"""import_contract_violations: imports that break the package and layer contracts.

Runs import-linter over the contracts in pyproject.toml (the diagram of
docs/architecture.md) and counts the illegal import chains it reports. Target 0.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def main() -> int:
    proc = subprocess.run([LINT_IMPORTS, "--no-cache"], capture_output=True, text=True, check=False)
    lines = proc.stdout.splitlines()
    chains = sum(1 for line in lines if line.startswith("-   "))
    summary = next((line for line in lines if line.startswith("Contracts:")), "")
    if proc.returncode != 0 and not chains:
        # A failure with no chain listed is a broken configuration, not a pass.
        print(proc.stdout + proc.stderr, file=sys.stderr)
        chains = max(chains, 1)
    print(f"import_contracts: {summary.removeprefix('Contracts: ') or 'none ran'}")
    print(f"import_contract_violations: {chains} imports")
    return 0 if chains == 0 and proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
