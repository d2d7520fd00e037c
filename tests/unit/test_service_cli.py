"""``towerbox service``: its words become the API's bodies, its answers tables."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
import pytest

from appliance.cli.service import (
    _register,
    _show,
    deploy_body,
    parse_values,
    service_rows,
    update_body,
)
from towerbox_core.errors import InvalidInput
from towerbox_core.rollout_plan import plan_rollout


def test_deploy_words_become_a_body(tmp_path: Path) -> None:
    words = ["web.greeting=hi", "web.x=1", 'web.keys=["ssh-ed25519 AAAA a@b"]', 'web.tag="42"']
    body = deploy_body("demo-web", None, "site", "acme", words)
    # Values are typed as `vm create --value` types them: a list or a number can be set.
    assert body == {
        "template": "demo-web",
        "name": "site",
        "tenant": "acme",
        "values": {
            "web": {"greeting": "hi", "x": 1, "keys": ["ssh-ed25519 AAAA a@b"], "tag": "42"}
        },
    }
    file = tmp_path / "s.toml"
    file.write_text('name = "s"\n[[roles]]\nname = "a"\ncatalog = "demo"\n')
    assert deploy_body(None, file, None, None, [])["service"]["roles"][0]["catalog"] == "demo"
    for bad in (
        lambda: deploy_body(None, None, None, None, []),
        lambda: deploy_body("demo-web", None, None, None, [], entry="demo"),
        lambda: deploy_body("demo-web", None, None, None, [], count=2),  # --count: --entry's
        lambda: parse_values(["x=1"], per_role=True),
        lambda: parse_values(["web.x=1", "web.x=2"], per_role=True),
    ):
        with pytest.raises(InvalidInput):
            bad()


def test_a_catalog_entry_deploys_as_one_role_with_its_values() -> None:
    parser = argparse.ArgumentParser()
    _register(parser)
    args = parser.parse_args(
        ["deploy", "--entry", "vllm", "--count", "2", "--value", "model=llama", "--value", "n=3"]
    )
    body = deploy_body(
        args.template, args.file, args.name, None, args.value, entry=args.entry, count=args.count
    )
    # The role is named as the UI's deploy names it, and the service after its entry.
    assert body == {
        "service": {
            "name": "vllm",
            "roles": [
                {"name": "app", "catalog": "vllm", "count": 2, "values": {"model": "llama", "n": 3}}
            ],
        }
    }
    named = deploy_body(None, None, "chat", "acme", [], entry="vllm")
    assert named == {
        "service": {"name": "chat", "roles": [{"name": "app", "catalog": "vllm", "count": 1}]},
        "tenant": "acme",
    }


def test_update_words_become_a_body() -> None:
    parser = argparse.ArgumentParser()
    _register(parser)
    args = parser.parse_args(
        ["update", "llm", "api", "--value", "model=b", "--vcpus", "2", "--dry-run"]
    )
    assert update_body(args) == {
        "role": "api",
        "values": {"model": "b"},
        "spec": {"vcpus": 2},
        "max_surge": 1,
        "max_unavailable": 0,
        "dry_run": True,
    }
    merged = parser.parse_args(["update", "llm", "api", "--value", "model=c", "--merge-values"])
    assert update_body(merged)["values"] == {"model": "c"}
    assert update_body(merged)["merge_values"] is True
    # Nothing to merge: said, not sent as a request that changes nothing.
    with pytest.raises(InvalidInput) as err:
        update_body(parser.parse_args(["update", "llm", "api", "--merge-values"]))
    assert err.value.extra["field"] == "--merge-values"
    moved = parser.parse_args(["update", "llm", "api", "--version", "2"])
    assert update_body(moved) == {
        "role": "api",
        "version": "2",
        "max_surge": 1,
        "max_unavailable": 0,
        "dry_run": False,
    }


def test_a_view_becomes_role_and_replica_rows() -> None:
    view = {
        "roles": [
            {
                "name": "api",
                "catalog": "demo",
                "count": 2,
                "healthy": 1,
                "health": "TCP port 80 answers",
                "values": {"model": "a", "hf_token": "(secret)"},
                "version": "1",
                "catalog_version": "2",
                "replicas": [
                    {
                        "vm": "s-api-1",
                        "generation": 0,
                        "state": "running",
                        "healthy": True,
                        "detail": "ok",
                    },
                    {
                        "vm": "s-api-2",
                        "generation": 0,
                        "state": "shutoff",
                        "healthy": False,
                        "detail": "off",
                    },
                ],
            }
        ]
    }
    roles, replicas = service_rows(view)
    assert roles[0]["healthy"] == "1/2"
    assert roles[0]["values"] == "hf_token=(secret), model=a"
    assert roles[0]["version"] == "1 (catalog: 2)"  # the node's catalog moved on
    assert [r["vm"] for r in replicas] == ["s-api-1", "s-api-2"]


def test_a_dry_run_prints_the_plan_as_numbered_steps(capsys: pytest.CaptureFixture[str]) -> None:
    plan = msgspec.to_builtins(plan_rollout(2))
    _show(argparse.Namespace(json=False), {"role": "api", "dry_run": True, "plan": plan})
    assert capsys.readouterr().out.splitlines() == [
        "dry run, nothing changed: role api",
        "  2 replica(s), surge 1, unavailable 0: at least 2 healthy at every moment",
        "  1. make new replica 1",
        "  2. wait for the health check of new replica 1",
        "  3. delete old replica 1",
        "  4. make new replica 2",
        "  5. wait for the health check of new replica 2",
        "  6. delete old replica 2",
    ]
