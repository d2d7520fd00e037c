"""Service templates: the rules, the start order and the rolling-update planner."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from towerbox_core.api.services import HealthCheck, RoleTemplate, ServiceTemplate
from towerbox_core.errors import InvalidInput
from towerbox_core.rollout_plan import plan_in_words, plan_rollout
from towerbox_core.service_rules import (
    check_template,
    parse_services_document,
    start_waves,
    stop_order,
)


def _template(*roles: dict[str, Any], name: str = "shop") -> ServiceTemplate:
    return msgspec.convert({"name": name, "roles": list(roles)}, ServiceTemplate)


def _refused(template: ServiceTemplate) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        check_template(template)
    return err.value


THREE = (
    {"name": "db", "catalog": "demo"},
    {"name": "api", "catalog": "demo", "count": 2, "after": ["db"]},
    {"name": "web", "catalog": "demo", "after": ["api", "db"]},
)


def test_a_good_template_passes_and_starts_in_waves() -> None:
    template = _template(*THREE)
    check_template(template)
    assert start_waves(template) == [["db"], ["api"], ["web"]]
    assert stop_order(template) == ["web", "api", "db"]


def test_roles_without_order_share_a_wave_in_template_order() -> None:
    template = _template(
        {"name": "b", "catalog": "demo"},
        {"name": "a", "catalog": "demo"},
        {"name": "c", "catalog": "demo", "after": ["a"]},
    )
    assert start_waves(template) == [["b", "a"], ["c"]]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(
            {"name": "s", "roles": [{"name": "a", "catalog": "d", "x": 1}]}, ServiceTemplate
        )


@pytest.mark.parametrize(
    ("roles", "code", "field"),
    [
        ((), "no_roles", "roles"),
        (
            ({"name": "a", "catalog": "demo"}, {"name": "a", "catalog": "demo"}),
            "duplicate_role",
            "roles[1].name",
        ),
        (({"name": "a b", "catalog": "demo"},), "invalid_name", "roles[0].name"),
        (({"name": "a", "catalog": "../x"},), "invalid_name", "roles[0].catalog"),
        (({"name": "a", "catalog": "demo", "count": 33},), "invalid_count", "roles[0].count"),
        (({"name": "a", "catalog": "demo", "count": -1},), "invalid_count", "roles[0].count"),
        (
            ({"name": "a", "catalog": "demo", "after": ["zz"]},),
            "unknown_after_role",
            "roles[0].after[0]",
        ),
        (({"name": "a", "catalog": "demo", "after": ["a"]},), "service_cycle", "roles[0].after[0]"),
        (
            ({"name": "a", "catalog": "demo", "vnets": ["no/pe"]},),
            "invalid_name",
            "roles[0].vnets[0]",
        ),
        (
            ({"name": "a", "catalog": "demo", "spec": {"vcpus": 0}},),
            "invalid_spec",
            "roles[0].spec",
        ),
    ],
)
def test_rules_refuse_with_a_stable_code(
    roles: tuple[dict[str, Any], ...], code: str, field: str
) -> None:
    err = _refused(_template(*roles))
    assert (err.code, err.extra["field"]) == (code, field)


def test_a_cycle_names_its_roles() -> None:
    err = _refused(
        _template(
            {"name": "a", "catalog": "demo", "after": ["c"]},
            {"name": "b", "catalog": "demo", "after": ["a"]},
            {"name": "c", "catalog": "demo", "after": ["b"]},
            {"name": "d", "catalog": "demo"},
        )
    )
    assert err.code == "service_cycle"
    assert err.extra["roles"] == ["a", "b", "c"]


def test_replica_names_must_fit_the_name_grammar() -> None:
    err = _refused(_template({"name": "r" * 30, "catalog": "demo"}, name="s" * 30))
    assert err.code == "invalid_name"


@pytest.mark.parametrize(
    ("health", "field"),
    [
        ({"kind": "serial"}, "marker"),
        ({"kind": "serial", "marker": "UP", "port": 80}, "port"),
        ({"kind": "tcp"}, "port"),
        ({"kind": "tcp", "port": 70000}, "port"),
        ({"kind": "tcp", "port": 80, "marker": "x"}, "marker"),
        ({"kind": "tcp", "port": 80, "timeout_s": 0}, "timeout_s"),
        ({"kind": "agent", "port": 80}, None),
    ],
)
def test_bad_health_fields_are_refused(health: dict[str, Any], field: str | None) -> None:
    err = _refused(_template({"name": "a", "catalog": "demo", "health": health}))
    assert err.code == "invalid_health"
    assert err.extra["field"] == "roles[0].health" + (f".{field}" if field else "")


def test_health_kinds_that_pass() -> None:
    for health in (
        HealthCheck("serial", marker="TOWERBOX-DEMO-BOOTED"),
        HealthCheck("tcp", port=8000, timeout_s=30),
        HealthCheck("agent"),
    ):
        check_template(ServiceTemplate("s", roles=[RoleTemplate("a", "demo", health=health)]))


# -- the rolling-update planner ------------------------------------------------------


def _healthy_at_each_step(replicas: int, steps: list[tuple[str, str]]) -> list[int]:
    """Healthy replicas after each step, counting a new one healthy once awaited."""
    healthy = {f"old-{i}" for i in range(replicas)}
    seen = []
    for action, replica in steps:
        if action == "delete":
            healthy.discard(replica)
        elif action == "await_health":
            healthy.add(replica)
        seen.append(len(healthy))
    return seen


def _steps(plan: Any) -> list[tuple[str, str]]:
    return [(s.action, s.replica) for s in plan.steps]


def test_surge_one_replaces_one_at_a_time_and_keeps_all_healthy() -> None:
    plan = plan_rollout(3)
    assert _steps(plan) == [
        ("create", "new-0"),
        ("await_health", "new-0"),
        ("delete", "old-0"),
        ("create", "new-1"),
        ("await_health", "new-1"),
        ("delete", "old-1"),
        ("create", "new-2"),
        ("await_health", "new-2"),
        ("delete", "old-2"),
    ]
    assert plan.min_healthy == 3
    assert min(_healthy_at_each_step(3, _steps(plan))) == 3


def test_unavailable_deletes_first_and_surge_adds_on_top() -> None:
    plan = plan_rollout(4, max_surge=1, max_unavailable=1)
    assert _steps(plan)[:5] == [
        ("delete", "old-0"),
        ("create", "new-0"),
        ("create", "new-1"),
        ("await_health", "new-0"),
        ("await_health", "new-1"),
    ]
    assert min(_healthy_at_each_step(4, _steps(plan))) == 3 == plan.min_healthy
    assert sum(1 for a, _ in _steps(plan) if a == "create") == 4


@pytest.mark.parametrize("replicas", [0, 1, 2, 5, 7])
@pytest.mark.parametrize(("surge", "unavailable"), [(1, 0), (2, 0), (0, 1), (1, 2), (3, 3)])
def test_every_plan_replaces_each_replica_once(replicas: int, surge: int, unavailable: int) -> None:
    plan = plan_rollout(replicas, max_surge=surge, max_unavailable=unavailable)
    steps = _steps(plan)
    assert sorted(r for a, r in steps if a == "delete") == sorted(
        f"old-{i}" for i in range(replicas)
    )
    assert sorted(r for a, r in steps if a == "create") == sorted(
        f"new-{i}" for i in range(replicas)
    )
    if replicas:
        assert min(_healthy_at_each_step(replicas, steps)) >= replicas - unavailable


def test_gpu_bound_with_no_free_slice_replaces_in_place_and_says_so() -> None:
    plan = plan_rollout(2, gpu_bound=True, free_gpu_slices=0)
    assert (plan.max_surge, plan.max_unavailable, plan.min_healthy) == (0, 1, 1)
    assert "in place" in plan.note
    assert _steps(plan)[:3] == [("delete", "old-0"), ("create", "new-0"), ("await_health", "new-0")]


def test_gpu_bound_with_a_free_slice_surges_on_it() -> None:
    plan = plan_rollout(2, max_surge=2, gpu_bound=True, free_gpu_slices=1)
    assert (plan.max_surge, plan.max_unavailable) == (1, 0)
    assert "free MIG slice" in plan.note
    assert plan_rollout(2, gpu_bound=True, free_gpu_slices=3).note == ""


def test_a_plan_reads_as_numbered_steps_counting_replicas_from_1() -> None:
    plan = plan_rollout(1, gpu_bound=True, free_gpu_slices=0)
    assert plan_in_words(plan) == [
        "1 replica(s), surge 0, unavailable 1: at least 0 healthy at every moment",
        plan.note,
        "1. delete old replica 1",
        "2. make new replica 1",
        "3. wait for the health check of new replica 1",
    ]


@pytest.mark.parametrize(("surge", "unavailable"), [(0, 0), (-1, 1), (1, 33)])
def test_a_plan_that_cannot_move_is_refused(surge: int, unavailable: int) -> None:
    with pytest.raises(InvalidInput) as err:
        plan_rollout(3, max_surge=surge, max_unavailable=unavailable)
    assert err.value.code == "invalid_rollout"


def _doc_refused(document: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        parse_services_document(document)
    return err.value


def test_a_services_document_takes_names_from_its_keys_and_checks_each_template() -> None:
    inline = {"roles": [{"name": "db", "catalog": "demo"}, {"name": "api", "catalog": "demo"}]}
    doc = parse_services_document(
        {
            "services": {
                "shop": {"tenant": "acme", "service": {**inline, "name": "ignored"}},
                "site": {"tenant": "beta", "template": "demo-web", "values": {"web": {"m": 1}}},
            }
        }
    )
    assert doc.services["shop"].service is not None
    assert doc.services["shop"].service.name == "shop"
    assert doc.services["shop"].request("shop").tenant == "acme"
    assert doc.services["site"].request("site").template == "demo-web"
    for document, code, field in (
        ([], "invalid_desired_document", None),
        ({"services": {"shop": {"tenant": "acme", "x": 1}}}, "invalid_desired_document", None),
        (
            {"services": {"shop": {"tenant": "acme"}}},
            "invalid_service_request",
            "services.shop.service",
        ),
        (
            {"services": {"shop": {"tenant": "acme", "template": "t", "service": inline}}},
            "invalid_service_request",
            "services.shop.service",
        ),
        (
            {"services": {"shop": {"tenant": "Acme!", "template": "t"}}},
            "invalid_name",
            "services.shop.tenant",
        ),
        (
            {"services": {"shop": {"tenant": "acme", "service": {"roles": []}}}},
            "no_roles",
            "services.shop.service.roles",
        ),
        (
            {
                "services": {
                    "shop": {"tenant": "acme", "template": "t", "values": {"db": {"Bad Key": 1}}}
                }
            },
            "invalid_name",
            "services.shop.values.db",
        ),
    ):
        err = _doc_refused(document)
        assert (err.code, err.extra.get("field")) == (code, field), document
