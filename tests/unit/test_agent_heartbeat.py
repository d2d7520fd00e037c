"""What the agent's heartbeats carry: the host facts only when the registry lacks them,
and no header that says nothing."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httpx
import msgspec

from edge_agent.appliance_link import ApplianceLink
from edge_agent.errors import Refused
from edge_agent.heartbeat import HeartbeatBuilder
from edge_agent.registry_link import RegistryLink
from towerbox_core.api.fleet import HeartbeatReply
from towerbox_core.api.versions import NodeVersions
from towerbox_core.wire import Heartbeat

VERSIONS = NodeVersions(towerbox="0.2.0", gpu_driver="550.54.15")


class FakeAppliance:
    def __init__(self) -> None:
        self.facts: dict[str, Any] = {"node": "n1", "health": "ok", "backends": ["GPU: x"]}

    async def host_facts(self) -> tuple[dict[str, Any], NodeVersions | None]:
        return dict(self.facts), VERSIONS


def _run(builder: HeartbeatBuilder, wanted: bool = False) -> Heartbeat:
    beat = asyncio.run(builder.build(7, 0))
    assert builder.answered(beat, HeartbeatReply(desired=[], facts_wanted=wanted)) is (
        wanted and not beat.host
    )
    return beat


def test_facts_go_up_once_then_only_their_hash_until_they_change() -> None:
    appliance = FakeAppliance()
    builder = HeartbeatBuilder(cast(ApplianceLink, appliance))
    first = _run(builder)
    assert first.host["node"] == "n1" and first.versions == VERSIONS
    quiet = _run(builder)
    assert (quiet.host, quiet.versions, quiet.facts_hash) == ({}, None, first.facts_hash)
    appliance.facts["health"] = "storage_full"
    changed = _run(builder)
    assert changed.host["health"] == "storage_full"
    assert changed.facts_hash != first.facts_hash
    assert _run(builder).host == {}
    assert builder.facts_sent == 2


def test_a_registry_that_lacks_the_facts_gets_them_at_once() -> None:
    builder = HeartbeatBuilder(cast(ApplianceLink, FakeAppliance()))
    _run(builder)
    thin = _run(builder, wanted=True)  # answered: send them now
    assert thin.host == {}
    again = _run(builder)
    assert again.host and again.versions == VERSIONS
    assert _run(builder).host == {}


def test_a_quiet_heartbeat_is_small_on_the_wire() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=msgspec.json.encode(HeartbeatReply(desired=[])))

    client = httpx.AsyncClient(base_url="http://registry", transport=httpx.MockTransport(answer))
    link = RegistryLink(client)
    beat = Heartbeat("0.2.0", 7, 0, facts_hash="0123456789abcdef")
    asyncio.run(link.heartbeat(beat))
    sent = seen[0]
    assert set(sent.headers) == {"host", "user-agent", "content-type", "content-length"}
    assert sent.headers["user-agent"].startswith("towerbox-agent/")
    assert len(sent.content) < 100, sent.content


def test_a_registry_older_than_the_hash_gets_the_form_it_knows() -> None:
    builder = HeartbeatBuilder(cast(ApplianceLink, FakeAppliance()))
    beat = asyncio.run(builder.build(7, 0))
    other = Refused("registry", 400, {"code": "invalid_batch"})
    assert builder.refused(beat, other) is False
    old = Refused("registry", 400, {"code": "invalid_heartbeat", "detail": "unknown field"})
    assert builder.refused(beat, old) is True  # sent again at once
    legacy = asyncio.run(builder.build(7, 0))
    assert legacy.facts_hash is None and legacy.versions is None
    assert legacy.host["node"] == "n1"
    # What an older registry decodes: no field it does not know.
    assert set(msgspec.to_builtins(legacy)) == {"agent_version", "appliance_head", "queued", "host"}
    assert builder.refused(legacy, old) is False  # refused in the old form too: a real error
