"""Values a catalog entry declares for its cloud-init template: typing, limits, codes,
redaction, and the declarations refused at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from appliance.catalog.cloud_init import render_cloud_init
from appliance.catalog.loading import entry_from_document, load_catalog, load_entry
from appliance.catalog.model import entry_document
from appliance.catalog.values import REDACTED, ValueDecl, check_values, redacted
from towerbox_core.errors import ConfigError, InvalidInput

REPO = Path(__file__).resolve().parents[2]

DECLS = {
    "model": ValueDecl(default="tinyllama", pattern="[a-z0-9.-]+", max_length=16),
    "ssh_authorized_keys": ValueDecl(type="list", max_items=2, pattern="ssh-ed25519 [A-Za-z0-9]+"),
    "replicas": ValueDecl(type="integer", default=1, minimum=1, maximum=8),
    "debug": ValueDecl(type="boolean", default=False),
    "api_key": ValueDecl(secret=True, required=True, pattern="[A-Za-z0-9]{8,}"),
}
GOOD = {"api_key": "s3cretKEY42"}


def test_defaults_fill_what_the_request_leaves_out() -> None:
    values = check_values(DECLS, {**GOOD, "ssh_authorized_keys": ["ssh-ed25519 AAAA"]})
    assert values == {
        "model": "tinyllama",
        "ssh_authorized_keys": ("ssh-ed25519 AAAA",),
        "replicas": 1,
        "debug": False,
        "api_key": "s3cretKEY42",
    }


@pytest.mark.parametrize(
    ("given", "code", "field"),
    [
        ({"colour": "blue"}, "unknown_value", "values.colour"),
        ({"model": 7}, "invalid_value_type", "values.model"),
        ({"replicas": "2"}, "invalid_value_type", "values.replicas"),
        ({"replicas": True}, "invalid_value_type", "values.replicas"),
        ({"debug": "yes"}, "invalid_value_type", "values.debug"),
        (
            {"ssh_authorized_keys": "ssh-ed25519 AAAA"},
            "invalid_value_type",
            "values.ssh_authorized_keys",
        ),
        ({"ssh_authorized_keys": [1]}, "invalid_value_type", "values.ssh_authorized_keys"),
        ({"model": "x" * 17}, "value_too_long", "values.model"),
        (
            {"ssh_authorized_keys": ["ssh-ed25519 A"] * 3},
            "value_too_long",
            "values.ssh_authorized_keys",
        ),
        ({"model": "Bad Model"}, "invalid_value", "values.model"),
        ({"model": 'a"b'}, "invalid_value", "values.model"),
        ({"model": "a\nb"}, "invalid_value", "values.model"),
        ({"ssh_authorized_keys": ["rsa x"]}, "invalid_value", "values.ssh_authorized_keys[0]"),
        ({"replicas": 9}, "invalid_value", "values.replicas"),
    ],
)
def test_bad_values_are_refused_with_a_stable_code(
    given: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        check_values(DECLS, {**GOOD, **given})
    assert (info.value.code, info.value.extra["field"]) == (code, field)
    assert info.value.status == 422


def test_a_wrong_type_says_what_was_given() -> None:
    # A shell's --value replicas=2 arrives as a number; a string where a number is
    # declared says so too, so the operator sees what to quote or unquote.
    # (A number where a string is declared also says how to quote it: below.)
    for given, got in (({"model": 7}, "an integer"), ({"replicas": "2"}, "a string")):
        with pytest.raises(InvalidInput) as info:
            check_values(DECLS, {**GOOD, **given})
        assert f", got {got}" in info.value.message


def test_a_required_value_left_out_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        check_values(DECLS, {})
    assert (info.value.code, info.value.extra["field"]) == ("missing_value", "values.api_key")


def test_a_secret_is_never_echoed_in_an_error() -> None:
    with pytest.raises(InvalidInput) as info:
        check_values(DECLS, {"api_key": "short!"})
    assert "short!" not in info.value.message


def test_redacted_hides_secrets_only() -> None:
    values = check_values(DECLS, GOOD)
    shown = redacted(DECLS, values)
    assert shown["api_key"] == REDACTED
    assert shown["model"] == "tinyllama"
    assert "s3cretKEY42" not in msgspec.json.encode(shown).decode()


def test_lists_integers_and_booleans_render_as_yaml(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    (tmp_path / "t.yaml").write_text(
        '#cloud-config\nkeys: $ssh_authorized_keys\nn: $replicas\ndebug: $debug\nm: "$model"\n'
    )
    entry = msgspec.structs.replace(
        load_catalog(REPO / "images" / "catalog")["demo"], cloud_init_template="t.yaml"
    )
    values = check_values(
        DECLS, {**GOOD, "ssh_authorized_keys": ["ssh-ed25519 AAAA", "ssh-ed25519 BBBB"]}
    )
    rendered = render_cloud_init(entry, tmp_path, values)
    assert rendered is not None
    assert yaml.safe_load(rendered) == {
        "keys": ["ssh-ed25519 AAAA", "ssh-ed25519 BBBB"],
        "n": 1,
        "debug": False,
        "m": "tinyllama",
    }


def test_shipped_entries_declare_their_values() -> None:
    catalog = load_catalog(REPO / "images" / "catalog")
    assert catalog["demo"].model_file == "demo-model.img"
    assert catalog["demo"].cloud_init_values["model"].default == "tinyllama-1.1b"
    llm = catalog["vllm-inference"].cloud_init_values
    assert llm["ssh_authorized_key"].required
    assert llm["hf_token"].secret


# -- declarations refused at load -----------------------------------------------------

ENTRY = """\
name = "box"
description = "d"
version = "1"
role = "other"

[image]
kind = "kernel"
file = "k"

[cloud_init]
template = "t.yaml"

[cloud_init.values.{name}]
{decl}
"""


@pytest.mark.parametrize(
    ("name", "decl", "field"),
    [
        ("model", 'type = "float"', "cloud_init.values[...].type"),
        ("model", "colour = 1", "cloud_init.values[...].colour"),
        ("vm_name", "", "cloud_init.values.vm_name"),
        ("Model", "", "cloud_init.values.Model"),
        ("model", 'pattern = "("', "cloud_init.values.model.pattern"),
        ("model", "max_length = 0", "cloud_init.values.model"),
        ("model", 'required = true\ndefault = "a"', "cloud_init.values.model.default"),
        ("model", "default = 3", "cloud_init.values.model.default"),
        ("model", 'default = "A B"\npattern = "[A-Z]+"', "cloud_init.values.model.default"),
        ("unused", "", "cloud_init.values.unused"),
    ],
)
def test_bad_declarations_are_refused_at_load(
    tmp_path: Path, name: str, decl: str, field: str
) -> None:
    (tmp_path / "cloud-init").mkdir()
    (tmp_path / "cloud-init" / "t.yaml").write_text('#cloud-config\nm: "$model"\n')
    path = tmp_path / "box.toml"
    path.write_text(ENTRY.format(name=name, decl=decl))
    with pytest.raises(ConfigError) as info:
        load_entry(path, templates_dir=tmp_path / "cloud-init")
    assert info.value.code == "invalid_catalog_entry"
    assert info.value.extra["field"] == field


def test_values_without_a_template_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "box.toml"
    path.write_text(ENTRY.format(name="model", decl="").replace('template = "t.yaml"\n', ""))
    with pytest.raises(ConfigError) as info:
        load_entry(path, templates_dir=tmp_path)
    assert info.value.extra["field"] == "cloud_init.values"


def test_an_entry_with_values_and_a_model_survives_its_document() -> None:
    demo = load_catalog(REPO / "images" / "catalog")["demo"]
    again = entry_from_document(entry_document(demo), REPO / "images" / "cloud-init", "entries[0]")
    assert again.cloud_init_values == demo.cloud_init_values
    assert again.model_file == demo.model_file


def test_a_number_given_for_a_string_says_how_to_quote_it() -> None:
    with pytest.raises(InvalidInput) as info:
        check_values(DECLS, {**GOOD, "model": 5})
    assert info.value.message == (
        "value 'model' must be a string, got an integer; a string is quoted: \"5\" "
        "(on the command line --value 'model=\"5\"')"
    )
    with pytest.raises(InvalidInput) as secret:
        check_values(DECLS, {**GOOD, "api_key": 12345678})
    assert "12345678" not in secret.value.message  # a secret is never echoed
