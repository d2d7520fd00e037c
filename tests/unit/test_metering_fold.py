"""The metering fold on hand-written journals: what each kind opens and closes, a clock
that steps back, whole layouts, and rollups that give the same figures as the entries
they replace."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from towerbox_core.metering.fold import ROLLUP_KIND, Interval, fold
from towerbox_core.metering.ledger import Entry, Rollup, from_rollups, next_rollup
from towerbox_core.metering.report import HOUR_US, hour_buckets

T0 = "2030-01-01T00:00:00+00:00"


def at(minutes: float) -> str:
    return (dt.datetime.fromisoformat(T0) + dt.timedelta(minutes=minutes)).isoformat()


def vm(name: str, tenant: str | None, **spec: Any) -> dict[str, Any]:
    return {
        "spec": {"name": name, "tenant": tenant, "vcpus": 2, "memory_mib": 1024, **spec},
        "disk_gib": 10,
    }


def seconds(intervals: list[Interval], resource: str) -> float:
    return (
        sum(i.amount * (i.end_us - i.start_us) for i in intervals if i.resource == resource) / 1e6
    )


def test_a_vm_charges_while_active_and_its_disk_while_it_exists() -> None:
    entries: list[Entry] = [
        (1, "vm.created", "v1", vm("web", "acme"), at(0)),
        (2, "vm.state", "v1", {"state": "running"}, at(10)),
        (3, "vm.state", "v1", {"state": "paused"}, at(20)),  # still holds its memory
        (4, "vm.state", "v1", {"state": "shutoff"}, at(30)),
        (5, "vm.deleted", "v1", None, at(60)),
    ]
    _, closed = fold(entries)
    assert seconds(closed, "vcpu") == 2 * 20 * 60
    assert seconds(closed, "memory_mib") == 1024 * 20 * 60
    assert seconds(closed, "disk_gib") == 10 * 60 * 60
    assert {i.tenant for i in closed} == {"acme"}


def test_vm_created_gives_the_state_the_vm_was_made_in() -> None:
    # Nodes journal "shutoff"; entries from before the field had none and mean the same.
    for made in ({"state": "shutoff"}, {}):
        entries: list[Entry] = [
            (1, "vm.created", "v1", {**vm("idle", "acme"), **made}, at(0)),
            (2, "vm.deleted", "v1", None, at(60)),
        ]
        _, closed = fold(entries)
        assert seconds(closed, "vcpu") == 0
        assert seconds(closed, "disk_gib") == 10 * 60 * 60
    running: list[Entry] = [
        (1, "vm.created", "v1", {**vm("web", "acme"), "state": "running"}, at(0)),
        (2, "vm.state", "v1", {"state": "shutoff"}, at(10)),
    ]
    _, closed = fold(running)
    assert seconds(closed, "vcpu") == 2 * 10 * 60


def test_a_clock_that_steps_back_never_makes_time_negative() -> None:
    entries: list[Entry] = [
        (1, "vm.created", "v1", vm("web", None), at(0)),
        (2, "vm.state", "v1", {"state": "running"}, at(30)),
        (3, "vm.state", "v1", {"state": "shutoff"}, at(20)),  # NTP stepped back
        (4, "vm.state", "v1", {"state": "running"}, at(40)),
        (5, "vm.state", "v1", {"state": "shutoff"}, at(50)),
    ]
    _, closed = fold(entries)
    assert all(i.end_us >= i.start_us for i in closed)
    assert seconds(closed, "vcpu") == 2 * 10 * 60  # 30→30 counts nothing, 40→50 counts


def test_slices_follow_binds_releases_and_whole_layouts() -> None:
    layout = {
        "layout": {
            "instances": [
                {"profile": "3g.40gb", "start": 4, "owner": "du1"},
                {"profile": "1g.10gb", "start": 0, "owner": "process:acme/vllm"},
            ]
        }
    }
    entries: list[Entry] = [
        (1, "vm.created", "v1", vm("llm", "beta"), at(0)),
        (
            2,
            "gpu.instance_bound",
            "GPU-1",
            {"profile": "2g.20gb", "start": 2, "owner": "llm"},
            at(0),
        ),
        (
            3,
            "gpu.instance_released",
            "GPU-1",
            {"profile": "2g.20gb", "start": 2, "owner": "llm"},
            at(30),
        ),
        (4, "gpu.layout_applied", "GPU-1", layout, at(30)),
        (5, "gpu.instance_destroyed", "GPU-1", {"profile": "1g.10gb", "start": 0}, at(45)),
    ]
    meter, closed = fold(entries)
    by = {(i.tenant, i.resource): i.end_us - i.start_us for i in closed}
    assert by[("beta", "mig:2g.20gb")] == 30 * 60 * 1_000_000
    assert by[("acme", "mig:1g.10gb")] == 15 * 60 * 1_000_000
    # The vRAN VM is the node's own (no VM row named du1): charged to the node.
    still = [(i.tenant, i.resource) for i in meter.open_intervals(10**18)]
    assert [held for held in still if held[1].startswith("mig:")] == [("", "mig:3g.40gb")]


def test_a_claim_on_another_slice_moves_the_owner_off_its_old_one() -> None:
    # The committed layout names an owner on one instance per GPU: a process that
    # claims another profile (or a VM whose slice a cut-short apply destroyed) is moved
    # by the bind itself, with no release of the old slice in the journal.
    def bound(seq: int, profile: str, start: int, minutes: float) -> Entry:
        slot = {"profile": profile, "start": start, "owner": "process:acme/train"}
        return (seq, "gpu.instance_bound", "GPU-1", slot, at(minutes))

    entries: list[Entry] = [
        bound(1, "1g.10gb", 0, 0),
        bound(2, "2g.20gb", 2, 10),
        (
            3,
            "gpu.instance_bound",
            "GPU-2",
            {"profile": "1g.10gb", "start": 0, "owner": "x"},
            at(20),
        ),
        bound(4, "2g.20gb", 2, 30),  # the one it holds: nothing changes
        (5, "gpu.instance_released", "GPU-1", {"owner": "process:acme/train"}, at(60)),
    ]
    meter, closed = fold(entries)
    assert seconds(closed, "mig:1g.10gb") == 10 * 60
    assert seconds(closed, "mig:2g.20gb") == 50 * 60
    assert set(meter.state.mig) == {"GPU-2/0"}  # another GPU's slice is not touched


def _random_journal(rng: random.Random, n: int) -> list[Entry]:
    entries: list[Entry] = []
    minute = 0.0
    vms: dict[str, str] = {}
    for seq in range(1, n + 1):
        minute += rng.choice((0, 0.5, 3, 17))
        choice = rng.random()
        if choice < 0.15 or not vms:
            vm_id = f"v{seq}"
            vms[vm_id] = rng.choice(("acme", "beta"))
            entries.append((seq, "vm.created", vm_id, vm(vm_id, vms[vm_id]), at(minute)))
        elif choice < 0.7:
            vm_id = rng.choice(sorted(vms))
            state = {"state": rng.choice(("running", "shutoff", "paused"))}
            entries.append((seq, "vm.state", vm_id, state, at(minute)))
        elif choice < 0.8:
            vm_id = rng.choice(sorted(vms))
            slot = {"profile": "1g.10gb", "start": rng.randrange(4), "owner": vm_id}
            entries.append((seq, "gpu.instance_bound", "GPU-1", slot, at(minute)))
        elif choice < 0.9:
            entries.append((seq, "n6.other", "x", {}, at(minute)))
        else:
            vm_id = rng.choice(sorted(vms))
            del vms[vm_id]
            entries.append((seq, "vm.deleted", vm_id, None, at(minute)))
    return entries


def test_rollups_give_the_figures_of_the_entries_they_replace() -> None:
    rng = random.Random(7)
    for _ in range(20):
        entries = _random_journal(rng, 300)
        end_us = HOUR_US * (24 * 365 * 60 + 48)  # far past the last entry
        full, closed = fold(entries)
        reference = hour_buckets([*closed, *full.open_intervals(end_us)], 0, end_us)
        # Compact twice at random bounds: each rollup covers the entries since the last.
        first, second = sorted(rng.sample(range(1, 300), 2))
        r1 = next_rollup(None, entries, first)
        r2 = next_rollup(r1, [e for e in entries if e[0] > first], second)
        rollups: list[Rollup] = [r1, r2]
        ledger = from_rollups(rollups)
        rollup_entry: Entry = (301, ROLLUP_KIND, str(second), {}, at(0))
        ledger.feed_all([*[e for e in entries if e[0] > second], rollup_entry])
        assert ledger.buckets(0, end_us, end_us) == reference
