"""What a plan does to workloads, and what changed since a dry-run: pure rules."""

from __future__ import annotations

from appliance.domain.gpu.effects import changed_since, workload_effects
from appliance.domain.gpu.layout import Instance, Layout, MigRole


def _layout(*instances: Instance) -> Layout:
    return Layout("H100-80GB", instances)


def test_a_vm_with_no_slice_left_here_starts_on_another_gpus_free_slice() -> None:
    drained = (Instance("1g.10gb", 0, MigRole.B2B, "llm"),)
    target = _layout(Instance("2g.20gb", 0))
    other = _layout(Instance("1g.10gb", 3), Instance("1g.10gb", 1, MigRole.B2B, "busy"))
    (effect,) = workload_effects(drained, target, [("GPU-2", other)])
    assert (effect.effect, effect.detail) == (
        "restart",
        "shut down, then restarted on 1g.10gb at slot 3 of GPU GPU-2",
    )


def test_two_vms_do_not_both_get_the_one_free_slice() -> None:
    drained = (
        Instance("1g.10gb", 0, MigRole.B2B, "a"),
        Instance("1g.10gb", 1, MigRole.B2B, "b"),
    )
    effects = workload_effects(drained, _layout(Instance("1g.10gb", 5)))
    assert [(e.owner, e.effect) for e in effects] == [("a", "restart"), ("b", "wait")]


def test_a_process_claim_blocks_and_a_vran_slice_is_never_offered_to_b2b() -> None:
    drained = (
        Instance("1g.10gb", 0, MigRole.B2B, "process:vllm"),
        Instance("1g.10gb", 1, MigRole.B2B, "llm"),
    )
    target = _layout(Instance("1g.10gb", 2, MigRole.VRAN))
    effects = {e.owner: e.effect for e in workload_effects(drained, target)}
    assert effects == {"process:vllm": "blocks", "llm": "wait"}


def test_changes_since_a_dry_run_are_named() -> None:
    seen = _layout(Instance("1g.10gb", 0), Instance("1g.10gb", 1, MigRole.B2B, "a"))
    now = _layout(Instance("1g.10gb", 0, MigRole.B2B, "b"), Instance("2g.20gb", 2))
    assert changed_since(seen, now) == [
        "2g.20gb at slot 2 was created",
        "1g.10gb at slot 1 was destroyed",
        "1g.10gb at slot 0 is now held by b (was free)",
    ]
    assert changed_since(now, now) == []
