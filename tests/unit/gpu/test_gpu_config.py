"""The [gpu] configuration: named layouts and schedules, typed and checked at load."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.config import GpuScheduleConfig
from appliance.config_load import config_from
from appliance.domain.gpu.target import LayoutRequest
from towerbox_core.errors import ConfigError

OFFPEAK = {"counts": {"1g.10gb": 4}}


def _gpu(raw: dict[str, Any], **env: str) -> Any:
    return config_from({"gpu": raw}, env, "test.toml").gpu


def test_layouts_and_schedules_are_typed() -> None:
    gpu = _gpu(
        {
            "layouts": {"offpeak": OFFPEAK},
            "schedules": {"offpeak": {"cron": "0 22 * * *", "layout": "offpeak"}},
        }
    )
    assert gpu.layouts == {"offpeak": LayoutRequest(counts={"1g.10gb": 4})}
    assert gpu.schedules == {"offpeak": GpuScheduleConfig(cron="0 22 * * *", layout="offpeak")}


def test_layouts_from_the_environment_as_json() -> None:
    gpu = _gpu({}, TOWERBOX_GPU_LAYOUTS='{"offpeak": {"counts": {"1g.10gb": 4}}}')
    assert gpu.layouts["offpeak"].counts == {"1g.10gb": 4}
    with pytest.raises(ConfigError, match="must be a JSON object"):
        _gpu({}, TOWERBOX_GPU_LAYOUTS="{not json")


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (
            {"layouts": {"x": OFFPEAK}, "schedules": {"s": {"cron": "0 25 * * *", "layout": "x"}}},
            "invalid_cron",
            "bad cron expression '0 25 * * *'",
        ),
        (
            {"layouts": {"x": OFFPEAK}, "schedules": {"s": {"cron": "0 6 * * *", "layout": "y"}}},
            "unknown_layout",
            "no layout 'y'",
        ),
        ({"layouts": {"x": {**OFFPEAK, "instances": []}}}, "config_error", "exactly one"),
        ({"layouts": {"x": {"layout": "y"}}}, "config_error", "instances or counts"),
        ({"layouts": {"x": {"count": {}}}}, "config_error", "gpu.layouts.x"),
        ({"schedules": {"s": {"cron": "0 6 * * *"}}}, "config_error", "gpu.schedules.s"),
    ],
)
def test_bad_tables_are_refused_at_load(raw: dict[str, Any], code: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _gpu(raw)
    assert caught.value.code == code
    assert words in caught.value.message
