"""History lines: a short, readable summary per journal entry."""

from __future__ import annotations

from towerbox_core.journal_history import history, summarize
from towerbox_core.wire import Actor, WireEntry


def test_known_kinds_read_as_sentences() -> None:
    assert summarize("vm.state", {"name": "web", "state": "running", "was": "shutoff"}) == (
        "shutoff → running"
    )
    created = {"spec": {"name": "du", "vcpus": 4, "memory_mib": 8192, "role": "vran"}}
    assert summarize("vm.created", created) == "created: 4 vCPU, 8192 MiB, role vran"
    layout = {"layout": {"gpu_model": "H100", "instances": [{"profile": "1g.10gb"}] * 3}}
    assert summarize("gpu.layout_applied", layout) == "layout applied: 3 x 1g.10gb"
    failed = {"code": "gpu_busy", "detail": "slice 3 held"}
    assert summarize("gpu.layout_failed", failed) == "layout failed: gpu_busy: slice 3 held"
    assert summarize("vm.gpu_waiting", {"name": "a", "reason": "no slice"}) == (
        "gpu waiting: no slice"
    )
    assert summarize("vm.deleted", None) == "deleted"


def test_other_kinds_show_a_few_fields_and_stay_short() -> None:
    line = summarize(
        "thing.changed", {"name": "x", "a": 1, "b": "two", "c": True, "d": 4.5, "e": 5, "f": {}}
    )
    assert line == "changed: a=1, b=two, c=True, d=4.5, +2 more"
    assert len(summarize("thing.changed", {"reason": "y" * 1000})) == 160


def test_history_is_newest_first_with_names_from_the_page_or_the_caller() -> None:
    entries = [
        WireEntry(
            1, "vm.created", "vm", "id-1", {"spec": {"name": "web"}}, None, Actor(user="ann")
        ),
        WireEntry(2, "vm.deleted", "vm", "id-1", None, None, Actor(user="ann", tenant="acme")),
        WireEntry(3, "vm.deleted", "vm", "id-2", None, None, None),
    ]
    lines = history(entries, {"id-2": "db"})
    assert [(line.seq, line.object_name, line.actor) for line in lines] == [
        (3, "db", "job:node"),
        (2, "web", "ann@acme"),
        (1, "web", "ann"),
    ]


def test_alert_entries_name_their_rule_and_object() -> None:
    fired = {
        "rule": "vran_vm_down",
        "object": "vm:du",
        "severity": "critical",
        "message": "vRAN VM du is shutoff (desired running)",
    }
    assert summarize("alert.fired", fired) == (
        "fired: critical: vRAN VM du is shutoff (desired running)"
    )
    acked = {**fired, "acked_by": "ops"}
    assert summarize("alert.acked", acked).startswith("acked by ops: critical")
    [line] = history([WireEntry(7, "alert.fired", "alert", "3", fired)], {})
    assert line.object_name == "vran_vm_down on vm:du"
