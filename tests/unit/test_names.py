"""The one name grammar: ``check_name`` refuses what ``$`` would let through."""

from __future__ import annotations

import pytest

from towerbox_core import names
from towerbox_core.errors import InvalidInput
from towerbox_core.names import check_ifname, check_name, is_valid_name, parse_label


@pytest.mark.parametrize("value", ["a", "edge-01", "acme.robotics", "A_b-c.9", "x" * 63])
def test_names_in_the_grammar_pass(value: str) -> None:
    assert is_valid_name(value)
    check_name("tenant", value)


@pytest.mark.parametrize(
    "value", ["ab\n", "ab\r\n", "\nab", "a b", "-ab", ".ab", "", "x" * 64, "café", None, 7]
)
def test_names_outside_the_grammar_are_refused(value: object) -> None:
    assert not is_valid_name(value)
    with pytest.raises(InvalidInput) as err:
        check_name("tenant", value, field="tenant")
    assert (err.value.code, err.value.extra["field"]) == ("invalid_name", "tenant")


def test_a_trailing_newline_is_refused_everywhere_a_name_is_checked() -> None:
    with pytest.raises(InvalidInput) as err:
        check_ifname("br0\n", "bridge")
    assert err.value.code == "invalid_interface_name"
    for label in ("site=edge\n", "site\n=edge"):
        with pytest.raises(InvalidInput) as err:
            parse_label(label)
        assert err.value.code == "invalid_name"


def test_no_msgspec_name_pattern_with_the_dollar_hole_is_left() -> None:
    # msgspec checks a Meta pattern with re.search, so "^...$" accepts "ab\n"; the
    # module offers none, and structs leave names to check_name.
    assert not hasattr(names, "Name")
    assert not hasattr(names, "NAME_PATTERN")
