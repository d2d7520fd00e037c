"""The N6 tests' own rule priorities and route tables, whatever a run's process id.

A run that counted the product's tables as its own would call a node's VNets on this
host its leftovers (or remove them); two ranges of one run that overlapped would let
one backend's test see the other's rules as its own.
"""

from __future__ import annotations

import math

from tests.support.n6host import run_ranges
from upf_bridge import naming


def _overlap(a: naming.OwnedRanges, b: naming.OwnedRanges) -> bool:
    # Every range spans TABLE_SPAN tables: two meet when either starts inside the other.
    return a.owns_table(b.table_base) or b.owns_table(a.table_base)


def test_no_run_takes_the_products_tables_and_its_own_ranges_stay_apart() -> None:
    product = [naming.OVS_RANGES, naming.LINUX_RANGES]
    # Every residue the ranges are built from (pid % 16, % 64 and % 1000) comes round.
    for pid in range(math.lcm(64, 1000)):
        ours = run_ranges(pid)
        for r in ours:
            assert r.table_base + naming.TABLE_SPAN <= 1 << 32, (pid, r)
            for p in product:
                assert not _overlap(r, p), (pid, r, p)
        for i, a in enumerate(ours):
            for b in ours[i + 1 :]:
                assert not _overlap(a, b), (pid, a, b)
