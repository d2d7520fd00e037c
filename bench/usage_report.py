"""usage_report_ms, registry_usage_report_ms, registry_vs_node_usage_mismatch: metering
reports on a generated month.

- usage_report_ms: a month's report for one node (NODE_TENANTS tenants, NODE_VMS VMs,
  each stopped and started once a day, a MIG slice claimed and released per tenant
  each day) from the node's ``MeteringService`` on a journal written through
  ``journal.append`` under a scripted clock; the median of RUNS warm reports (the
  ledger follows the journal), and ``usage_report_cold_ms`` for the first, which
  folds the whole journal.
- registry_usage_report_ms: the fleet's month by tenant (``group_by=month``) for
  SITES sites, each with SITE_TENANTS tenants and SITE_VMS VMs on the same daily
  rhythm, journal rows written straight into the registry's SQLite; the median of
  RUNS reports with the per-site ledgers kept (no new entries), then
  ``registry_usage_report_follow_ms`` after one new entry at every site (each
  ledger folds one entry, each site's month is bucketed and rated anew), and
  ``registry_usage_report_cold_ms`` for a fresh service that folds every journal.
- registry_vs_node_usage_mismatch: the node's journal shipped to a registry site
  whole, then the node compacts half the month (writing a rollup) and rebuilds its
  ledger; report lines per tenant, resource and day that differ between the node and
  the registry for the month up to the last entry (0 expected).

Targets: usage_report_ms <= 200, registry_usage_report_ms <= 2000 (and the same for
registry_usage_report_follow_ms: a fleet whose sites all sent something since the last
report, the usual case), mismatch 0. The cold figures are printed, not held to a
target: a registry builds each site's ledger once, at its first report after a start.
Exit 1 when one is missed.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from appliance.services.metering import MeteringService
from appliance.store import compaction, journal
from appliance.store import db as node_db
from appliance.store.models import JournalEntry
from registry.config import SitesConfig, parse_database_url
from registry.services.sites import SiteService
from registry.services.usage import UsageService
from registry.store import sql
from registry.store.db import open_database
from registry.store.models import Site
from towerbox_core.metering.fold import parse_time_us
from towerbox_core.metering.period import iso
from towerbox_core.metering.report import rated

NODE_TENANTS, NODE_VMS = 100, 1000
SITES = int(os.environ.get("BENCH_SITES", "1800"))
SITE_TENANTS, SITE_VMS = 3, 6
DAYS, RUNS = 30, 5
T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
START, END = (
    int(T0.timestamp()) * 1_000_000,
    int((T0 + dt.timedelta(days=DAYS)).timestamp()) * 1_000_000,
)
TARGETS = {
    "usage_report_ms": 200.0,
    "registry_usage_report_ms": 2000.0,
    "registry_usage_report_follow_ms": 2000.0,
}


def month(vms: int, tenants: int) -> Iterator[tuple[dt.datetime, str, str, str, Any]]:
    """(time, kind, object_type, object_id, state) in time order."""
    for v in range(vms):
        spec = {"name": f"vm{v}", "tenant": f"t{v % tenants}", "vcpus": 2, "memory_mib": 2048}
        yield T0, "vm.created", "vm", f"vm-{v}", {"spec": spec, "disk_gib": 20}
        yield T0, "vm.state", "vm", f"vm-{v}", {"name": f"vm{v}", "state": "running"}
    for day in range(DAYS):
        for v in range(vms):
            stop = T0 + dt.timedelta(days=day, hours=v % 24, minutes=7)
            yield stop, "vm.state", "vm", f"vm-{v}", {"name": f"vm{v}", "state": "shutoff"}
            start = stop + dt.timedelta(minutes=50)
            yield start, "vm.state", "vm", f"vm-{v}", {"name": f"vm{v}", "state": "running"}
        for t in range(min(tenants, 7)):
            at = T0 + dt.timedelta(days=day, hours=t)
            owner = f"process:t{t}/job"
            bound = {"start": t, "profile": "1g.10gb", "owner": owner}
            yield at, "gpu.instance_bound", "gpu", "GPU-0", bound
            yield (
                at + dt.timedelta(hours=2),
                "gpu.instance_released",
                "gpu",
                "GPU-0",
                {"owner": owner},
            )


def _sorted(events: Iterator[tuple[dt.datetime, str, str, str, Any]]) -> list[Any]:
    return sorted(events, key=lambda e: e[0])


def _ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def node_journal(path: Path) -> None:
    node_db.open_database(path)
    events = _sorted(month(NODE_VMS, NODE_TENANTS))
    now = [T0]
    journal.set_clock(lambda: now[0])
    with journal.write_transaction():
        for at, kind, otype, oid, state in events:
            now[0] = at
            journal.append(kind, otype, oid, state)


def node_report(service: MeteringService, group_by: str = "total") -> list[Any]:
    return service.report(START, END, END, group_by).lines


def registry_fleet(tmp: Path) -> UsageService:
    db = open_database(parse_database_url(f"sqlite:///{tmp / 'registry.db'}", tmp))
    events = _sorted(month(SITE_VMS, SITE_TENANTS))
    with db.atomic():
        for s in range(SITES):
            site = Site.create(name=f"site-{s:04d}", acked_seq=len(events))
            sql.executemany(
                sql.INSERT_JOURNAL,
                [
                    (
                        site.id,
                        seq,
                        kind,
                        otype,
                        oid,
                        msgspec.json.encode(state).decode(),
                        at.isoformat(),
                        None,
                    )
                    for seq, (at, kind, otype, oid, state) in enumerate(events, start=1)
                ],
            )
    return UsageService(SiteService(SitesConfig()))


def one_more_entry(seq: int) -> None:
    """A VM stopped at every site just before the month ends."""
    at = (T0 + dt.timedelta(days=DAYS) - dt.timedelta(minutes=1)).isoformat()
    state = '{"name": "vm0", "state": "shutoff"}'
    sites = [sid for (sid,) in sql.fetchall("SELECT id FROM site", ())]
    rows = [(sid, seq, "vm.state", "vm", "vm-0", state, at, None) for sid in sites]
    with Site._meta.database.atomic():
        sql.executemany(sql.INSERT_JOURNAL, rows)
        sql.execute("UPDATE site SET acked_seq = ?", (seq,))


def _median(fn: Callable[[], object]) -> float:
    return statistics.median(_ms(fn) for _ in range(RUNS))


def mismatch(tmp: Path, fleet: UsageService) -> int:
    """The node's journal shipped whole to one more registry site; then the node compacts."""
    rows = [
        (e.seq, e.kind, e.object_type, e.object_id, e.state, e.created_at.isoformat(), None)
        for e in JournalEntry.select().order_by(JournalEntry.seq)
    ]
    site = Site.create(name="the-node", acked_seq=rows[-1][0])
    sql.executemany(sql.INSERT_JOURNAL, [(site.id, *row) for row in rows])
    last = parse_time_us(rows[-1][5]) or 0
    to = last - last % 3_600_000_000
    half = rows[len(rows) // 2][0]
    service = MeteringService(clock=lambda: last)
    with journal.acting_as(journal.NODE_ACTOR):
        compaction.compact(len(rows) - half, 365 * 10, before=service.write_rollup)
    node = MeteringService(clock=lambda: last)  # rebuilt from the rollup
    mine: list[dict[str, Any]] = msgspec.to_builtins(
        rated(node.buckets(START, to, last), "day", []).lines
    )
    theirs = fleet.report("the-node", None, iso(START), iso(to), "day", []).lines
    shipped = [{k: v for k, v in msgspec.to_builtins(x).items() if k != "site"} for x in theirs]
    return sum(a != b for a, b in zip(mine, shipped, strict=False)) + abs(len(mine) - len(shipped))


def main() -> int:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        node_journal(tmp / "node.db")
        service = MeteringService(clock=lambda: END)
        figures["usage_report_cold_ms"] = _ms(lambda: node_report(service))
        figures["usage_report_ms"] = _median(lambda: node_report(service))
        fleet = registry_fleet(tmp)
        month_from, month_to = iso(START), iso(END)

        def fleet_report(usage: UsageService) -> object:
            return usage.report(None, None, month_from, month_to, "month", [])

        figures["registry_usage_report_cold_ms"] = _ms(lambda: fleet_report(fleet))
        figures["registry_usage_report_ms"] = _median(lambda: fleet_report(fleet))
        one_more_entry(len(_sorted(month(SITE_VMS, SITE_TENANTS))) + 1)
        figures["registry_usage_report_follow_ms"] = _ms(lambda: fleet_report(fleet))
        figures["registry_vs_node_usage_mismatch"] = mismatch(tmp, fleet)
    missed = [k for k, limit in TARGETS.items() if figures[k] > limit]
    if figures["registry_vs_node_usage_mismatch"]:
        missed.append("registry_vs_node_usage_mismatch")
    for name, value in figures.items():
        unit = "count" if name.endswith("mismatch") else "ms"
        print(f"{name}: {value:.1f} {unit}" if unit == "ms" else f"{name}: {value:.0f} {unit}")
    for name in missed:
        print(f"MISSED: {name}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
