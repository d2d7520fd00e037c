"""The frame's alerts on every page: the badge counts firing alerts by severity, the
menu lists each with its object, since, message and runbook, and Ack records the
user. Against a real appliance whose alert job runs every half second."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from nicegui.testing.user import User

from tests.ui.conftest import log_in
from tests.ui.stack import Appliance, appliance
from ui.alerts import badge_color, badge_text

pytestmark = pytest.mark.anyio

FAST = {
    "TOWERBOX_ALERTS_INTERVAL_S": "0.5",
    "TOWERBOX_ALERTS_FOR_S": json.dumps({"vran_vm_down": 0}),
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    with appliance(tmp_path_factory.mktemp("alerts"), extra_env=FAST) as running:
        yield running


def test_badge_words_and_colour() -> None:
    assert badge_text({}) == "no alerts" and badge_color({}) == "positive"
    assert badge_text({"warning": 1, "critical": 2}) == "2 critical · 1 warning"
    assert badge_color({"warning": 1, "info": 3}) == "warning"


async def test_a_stopped_vran_vm_shows_in_the_frame_and_is_acked(
    user: User, node: Appliance
) -> None:
    await log_in(user, node.password)
    await user.should_see("no alerts", retries=40)
    with node.http() as api:
        body = {"name": "du", "appliance": "demo", "spec": {"role": "vran", "restart": "never"}}
        assert api.post("/api/v1/vms", json=body).status_code == 201
    try:
        await user.should_see("1 critical", retries=100)
        user.find(marker="alerts-button").click()
        await user.should_see("vm:du")
        await user.should_see("vRAN VM du is")
        await user.should_see("towerbox vm start NAME")
        user.find("Ack").click()
        await user.should_see("acknowledged by admin", retries=40)
        with node.http() as api:
            [alert] = api.get("/api/v1/alerts").json()["alerts"]
            assert alert["acked_by"] == "admin"
    finally:
        with node.http() as api:
            assert api.delete("/api/v1/vms/du").status_code == 204
