"""Each alert rule on readings just past and just inside its bound."""

from __future__ import annotations

from dataclasses import replace

import pytest

from appliance.domain.alerts.readings import (
    GpuReading,
    HugepageReading,
    JobReading,
    NodeHealth,
    NodeReadings,
    VmReading,
)
from appliance.domain.alerts.rules import RULES, RULES_BY_ID, AlertBounds

B = AlertBounds()
AT = 1_000_000.0
QUIET = NodeReadings(AT, NodeHealth(disk_free=50, disk_size=100))
DU = VmReading("du", "u1", None, "vran", "running", "running")
LLM = VmReading("llm", "u2", "acme", "b2b", "running", "running", restarts=2)


def _objects(rule: str, r: NodeReadings) -> list[str]:
    return [f.object for f in RULES_BY_ID[rule].check(r, B)]


def test_a_quiet_node_raises_nothing() -> None:
    assert [r.id for r in RULES if r.check(replace(QUIET, vms=(DU, LLM)), B)] == []


@pytest.mark.parametrize(
    ("rule", "firing", "quiet"),
    [
        (
            "vran_vm_down",
            replace(QUIET, vms=(replace(DU, state="missing"), replace(LLM, state="shutoff"))),
            replace(QUIET, vms=(DU, replace(LLM, state="shutoff"))),
        ),
        (
            "vm_restart_loop",
            replace(QUIET, vms=(replace(LLM, restarts=3),)),
            replace(QUIET, vms=(LLM,)),
        ),
        (
            "gpu_layout_drift",
            replace(QUIET, gpus=(GpuReading("G1", "H100", ("1g.10gb@0 is missing",), 1),)),
            replace(QUIET, gpus=(GpuReading("G1", "H100"),)),
        ),
        (
            "mig_instance_missing",
            replace(QUIET, gpus=(GpuReading("G1", "H100", ("x",), 1),)),
            replace(QUIET, gpus=(GpuReading("G1", "H100", ("on the GPU, not committed",), 0),)),
        ),
        (
            "hugepages_exhausted",
            NodeReadings(AT, NodeHealth(hugepages=(HugepageReading(0, "1G", 0, 4),)), (DU,)),
            # The same pool with no vRAN VM on the node, or an empty pool.
            NodeReadings(
                AT,
                NodeHealth(
                    hugepages=(HugepageReading(0, "1G", 0, 4), HugepageReading(1, "2M", 0, 0))
                ),
                (LLM,),
            ),
        ),
        (
            "journal_backlog",
            replace(QUIET, health=NodeHealth(journal_unacked=B.journal_backlog_entries + 1)),
            replace(QUIET, health=NodeHealth(journal_unacked=B.journal_backlog_entries)),
        ),
        (
            "journal_oldest_unacked",
            replace(QUIET, health=NodeHealth(journal_oldest_unacked_age_s=3601)),
            replace(QUIET, health=NodeHealth(journal_oldest_unacked_age_s=3600)),
        ),
        (
            "wan_offline",
            replace(QUIET, health=NodeHealth(wan_last_sync=AT - B.wan_offline_s - 1)),
            replace(QUIET, health=NodeHealth(wan_last_sync=AT - B.wan_offline_s)),
        ),
        (
            "disk_space_low",
            replace(QUIET, health=NodeHealth(disk_free=9, disk_size=100)),
            replace(QUIET, health=NodeHealth(disk_free=10, disk_size=100)),
        ),
        (
            "qemu_unresponsive",
            replace(QUIET, vms=(replace(LLM, state="unresponsive"),)),
            replace(QUIET, vms=(LLM,)),
        ),
        (
            "schedule_failed",
            replace(
                QUIET, health=NodeHealth(jobs=(JobReading("gpu-schedule:n", None, AT, False),))
            ),
            replace(QUIET, health=NodeHealth(jobs=(JobReading("monitor", None, None, None),))),
        ),
    ],
)
def test_each_rule_fires_past_its_bound_only(
    rule: str, firing: NodeReadings, quiet: NodeReadings
) -> None:
    assert len(_objects(rule, firing)) == 1
    assert _objects(rule, quiet) == []


def test_wan_up_never_fires_however_old_the_sync() -> None:
    up = replace(QUIET, health=NodeHealth(wan_up=True, wan_last_sync=AT - 10**6))
    assert _objects("wan_offline", up) == []


def test_vm_findings_carry_the_tenant_and_every_rule_a_runbook() -> None:
    [finding] = RULES_BY_ID["qemu_unresponsive"].check(
        replace(QUIET, vms=(replace(LLM, state="unresponsive"),)), B
    )
    assert (finding.object, finding.tenant) == ("vm:llm", "acme")
    assert all(r.runbook and r.summary for r in RULES)
    assert RULES_BY_ID["vran_vm_down"].holds_for(replace(B, for_s={"vran_vm_down": 5})) == 5
