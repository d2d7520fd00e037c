"""The registry UI's pure parts: the site list's URL, documents' parsing and diff, the
slot map from a reported layout, the wording of fleet figures."""

from __future__ import annotations

import pytest

from registry_ui import doc_edit, fmt_fleet, site_view
from registry_ui.api import desired_path, site_path
from registry_ui.pages.enroll import labels_from
from registry_ui.site_query import PAGE_SIZE, SiteQuery, pages
from towerbox_core.errors import InvalidInput
from towerbox_core.fmt import problem_line


def test_site_query_round_trips_through_the_url() -> None:
    query = SiteQuery.from_url({"q": " cell ", "status": "offline", "page": "3", "sort": "-name"})
    assert query == SiteQuery(q="cell", status="offline", sort="-name", page=3)
    assert query.url() == "/sites?q=cell&status=offline&sort=-name&page=3"
    assert SiteQuery.from_url({"q": "cell", "status": "offline", "sort": "-name", "page": "3"}) == (
        query
    )
    assert query.params() == {
        "limit": PAGE_SIZE,
        "offset": 2 * PAGE_SIZE,
        "sort": "-name",
        "q": "cell",
        "status": "offline",
    }
    # Defaults stay out of the URL; nonsense falls back to them.
    assert SiteQuery().url() == "/sites"
    odd = SiteQuery.from_url({"status": "dead", "sort": "colour", "page": "-2"})
    assert odd == SiteQuery()


def test_a_changed_filter_starts_again_at_page_one() -> None:
    query = SiteQuery(page=4).with_(region="north")
    assert (query.region, query.page) == ("north", 1)
    assert query.with_(page=2).region == "north"
    assert [pages(0), pages(50), pages(51)] == [1, 1, 2]


def test_paths_quote_names_whole() -> None:
    assert site_path("a/b", "journal") == "/api/v1/sites/a%2Fb/journal"
    assert desired_path("site:cell-1", "gpu") == "/api/v1/sites/cell-1/desired/gpu"
    assert desired_path("group:tier=gold", "vnets") == "/api/v1/groups/tier%3Dgold/desired/vnets"


def test_documents_parse_and_diff_on_their_content() -> None:
    assert doc_edit.parse_document('{"a": 1}') == {"a": 1}
    with pytest.raises(InvalidInput) as bad:
        doc_edit.parse_document('{"a": }')
    assert bad.value.code == "invalid_json"
    assert "line 1, column 7" in bad.value.message
    with pytest.raises(InvalidInput) as listed:
        doc_edit.parse_document("[1]")
    assert listed.value.code == "invalid_document"
    # Key order and spacing are not changes; a value is.
    assert doc_edit.diff_lines({"a": 1, "b": 2}, {"b": 2, "a": 1}, "x") == []
    lines = doc_edit.diff_lines({"a": 1}, {"a": 2}, "gpu v3")
    assert lines[:2] == ["--- gpu v3 (published)", "+++ gpu v3 (yours)"]
    assert '-  "a": 1' in lines
    assert '+  "a": 2' in lines
    assert '+  "a": 1' in doc_edit.diff_lines(None, {"a": 1}, "new")


def test_a_reported_layout_on_the_compute_ruler() -> None:
    state = {
        "layout": {
            "gpu_model": "H100-80GB",
            "instances": [
                {"profile": "3g.40gb", "start": 0, "role": "vran", "owner": "du"},
                {"profile": "1g.10gb", "start": 6, "role": "b2b"},
            ],
        },
        "ops": 2,
    }
    found = site_view.gpu_layout(state)
    assert found is not None
    model, instances = found
    blocks, total = site_view.compute_ruler(model, instances)
    assert total == 7
    assert [(b.start, b.span, b.role) for b in blocks] == [
        (0, 3, "vran"),
        (3, 1, "free"),
        (4, 1, "free"),
        (5, 1, "free"),
        (6, 1, "b2b"),
    ]
    assert site_view.compute_ruler("A30-24GB", [])[1] == 4
    # A single instance report (a layout change under way) is no layout.
    assert site_view.gpu_layout({"profile": "1g.10gb", "start": 0}) is None


def test_actors_vnets_and_figures_in_words() -> None:
    assert site_view.actor_text({"user": "alice", "tenant": "acme"}) == "alice@acme"
    assert site_view.actor_text({"job": "monitor"}) == "job:monitor"
    assert site_view.actor_text({"who": "?"}) == "-"
    assert site_view.actor_text(None) == "-"
    vnet = {"vlan": 100, "subnet": "10.1.0.0/24", "gateway": "10.1.0.1"}
    assert site_view.vnet_line(vnet) == "vlan 100, subnet 10.1.0.0/24, gateway 10.1.0.1"
    counts = {"online": 3, "stale": 0, "offline": 1, "pending": 0}
    assert fmt_fleet.status_split(counts) == "3 online · 1 offline"
    assert fmt_fleet.contact(None) == "never heard from"
    assert fmt_fleet.contact("2026-01-02T03:04:05+00:00") == "last contact 2026-01-02 03:04:05 UTC"


def test_labels_from_the_enrollment_form() -> None:
    assert labels_from("tier=gold, zone=n1\nband=n78") == {
        "tier": "gold",
        "zone": "n1",
        "band": "n78",
    }
    assert labels_from("  ") == {}
    with pytest.raises(InvalidInput) as bad:
        labels_from("tier")
    assert bad.value.code == "invalid_label"


def test_a_services_documents_outcome_per_service() -> None:
    state = {
        "result": "applied",
        "services": {
            "shop": {"status": "deployed"},
            "batch": {
                "status": "rejected",
                "code": "quota_exceeded",
                "detail": "tenant acme would pass its vms quota: 3 used + 2 asked > 4",
            },
            "odd": "not an outcome",
        },
    }
    assert site_view.service_outcomes(state) == [
        (
            "batch",
            "rejected",
            "quota_exceeded: tenant acme would pass its vms quota: 3 used + 2 asked > 4",
        ),
        ("shop", "deployed", ""),
    ]
    assert site_view.service_outcomes({"result": "applied"}) == []
    assert site_view.service_outcomes(None) == []
    rejected = {"code": "tenant_not_found", "detail": "no tenant acme on this node"}
    assert problem_line(rejected) == "tenant_not_found: no tenant acme on this node"
    assert problem_line("bad profile") == "bad profile" and problem_line(None) == ""
