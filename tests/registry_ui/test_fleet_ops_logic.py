"""The pure parts of the rollout, provisioning and version pages: the wave settings
form, a rollout's progress line, the provisioning form, the version filter's URL."""

from __future__ import annotations

import pytest

from registry_ui import rollout_view
from registry_ui.forms import allow_from, expiry_from
from registry_ui.site_query import PAGE_SIZE, SiteQuery
from towerbox_core.errors import InvalidInput


def test_wave_settings_left_empty_take_the_registrys_defaults() -> None:
    assert rollout_view.rollout_options({"waves": "", "soak_s": " "}) == {}
    assert rollout_view.rollout_options(
        {"waves": "10, 50,100", "canary": "2", "soak_s": "1.5", "failure_pct": "5"}
    ) == {"waves": [10.0, 50.0, 100.0], "canary": 2, "soak_s": 1.5, "failure_pct": 5.0}


@pytest.mark.parametrize(
    ("fields", "code"),
    [({"waves": "5;25"}, "invalid_waves"), ({"canary": "one"}, "invalid_number")],
)
def test_wave_settings_that_are_not_numbers_are_refused(fields: dict[str, str], code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        rollout_view.rollout_options(fields)
    assert caught.value.code == code


def test_a_rollouts_progress_in_one_line() -> None:
    wave = {"sites": 1, "healthy": 0, "failed": 1, "percent": None}
    rest = {"sites": 3, "healthy": 0, "failed": 0, "percent": 100.0}
    halted = {"current_wave": 0, "waves": [wave, rest]}
    assert rollout_view.progress(halted) == "wave 1 of 2 · 0 of 4 sites healthy · 1 failed"
    assert [rollout_view.wave_name(w) for w in (wave, rest)] == ["canary", "100 %"]
    # Buttons follow the state: nothing resumes a completed rollout, only a roll back.
    assert rollout_view.ACTIONS["completed"] == ("rollback",)
    assert "rolled_back" not in rollout_view.ACTIONS


def test_provisioning_form_fields() -> None:
    assert allow_from("SN-1, 4c4c=cell-0042\n") == [
        "SN-1",
        {"hardware_id": "4c4c", "site": "cell-0042"},
    ]
    assert expiry_from("") is None
    assert expiry_from("1.5") == 129600
    with pytest.raises(InvalidInput) as caught:
        expiry_from("soon")
    assert caught.value.code == "invalid_ttl"


def test_the_version_filter_travels_in_the_url() -> None:
    query = SiteQuery.from_url({"component": "towerbox", "version": "0.2.0"})
    assert query.url() == "/sites?component=towerbox&version=0.2.0"
    assert query.params() == {
        "limit": PAGE_SIZE,
        "offset": 0,
        "sort": "name",
        "component": "towerbox",
        "version": "0.2.0",
    }
