"""outage_catchup_s: how long the agent takes to ship 100,000 entries queued during an
outage, with the registry, appliance and agent as separate processes and the WAN cut
by nftables in between. Also checks that the registry then holds exactly the node's
journal (journal_lost, journal_duplicated).

Usage: .venv/bin/python bench/sync_catchup.py [--entries N] [--postgresql]
Exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.sync.fleet import summaries, wait_in_sync  # noqa: E402
from tests.integration.sync.lab import open_lab  # noqa: E402
from tests.support.postgres import postgres_server  # noqa: E402

TARGET_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--postgresql", action="store_true")
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tbx-catchup-")))
        database = ""
        if args.postgresql:
            server = stack.enter_context(postgres_server())
            dbname = server.create_database("catchup").rsplit("/", 1)[1]
            database = f"postgresql://postgres@:{server.port}/{dbname}?host={server.root}"
        lab = stack.enter_context(open_lab(tmp, database))
        lab.agent.start()
        wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=60)
        lab.wan.cut(lab.registry.port)
        lab.fill_journal(args.entries)
        time.sleep(3)  # the agent notices the cut and backs off
        lab.wan.heal()
        started = time.monotonic()
        try:
            wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=300)
            ok = True
        except AssertionError as err:
            print(f"not in sync: {err}")
            ok = False
        catchup = time.monotonic() - started
        node, held = summaries(lab.daemon, lab.admin_token, lab.registry, lab.site)
        lost = max(0, node["count"] - held["count"])
        duplicated = max(0, held["count"] - node["count"])
        engine = "postgresql" if args.postgresql else "sqlite"
        print(f"outage_catchup_s: {catchup:.1f} s ({args.entries} entries, {engine})")
        print(f"journal_lost: {lost} entries")
        print(f"journal_duplicated: {duplicated} entries")
        print(f"checksum_equal: {int(node['checksum'] == held['checksum'])} bool")
    good = ok and catchup <= TARGET_S and lost == 0 and duplicated == 0
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
