"""Snapshots, grouping by creation site, and the text / JSON report."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any, List

import pytest

import handletrace
from handletrace import Report, ReportError
from handletrace._report.text import format_text

from . import sdk_objects


def make_configs(n: int) -> List[Any]:
    return [sdk_objects.speech_config() for _ in range(n)]  # site A


def make_recognizer() -> Any:
    return sdk_objects.recognizer()  # site B


def test_snapshot_is_an_immutable_copy(installed: None) -> None:
    """Later activity does not change a snapshot already taken."""
    configs = make_configs(1)
    before = handletrace.snapshot()
    more = make_configs(2)
    assert len(before) == 2
    assert len(handletrace.snapshot()) == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.records = ()  # type: ignore[misc]
    del configs, more


def test_filter_returns_a_new_snapshot(installed: None) -> None:
    """filter() keeps matching records and leaves the original alone."""
    configs = make_configs(2)
    snap = handletrace.snapshot()
    only_configs = snap.filter(kinds="speech_config")
    assert [r.kind for r in only_configs] == ["speech_config", "speech_config"]
    assert len(snap) == 4
    assert len(snap.filter(owners=["PropertyCollection"])) == 2
    assert len(snap.filter(older_than=3600)) == 0
    assert len(snap.filter(predicate=lambda r: r.seq % 2 == 1)) == 2
    del configs


def test_groups_are_by_creation_site_largest_first(installed: None) -> None:
    """Handles from one line form one group; the biggest group comes first."""
    recognizer = make_recognizer()
    configs = make_configs(3)
    groups = handletrace.snapshot().groups()
    assert [(g.count, g.site[2]) for g in groups] == [(6, "speech_config"), (2, "recognizer")]
    assert groups[0].kind_counts() == {
        ("speech_config", "SpeechConfig"): 3,
        ("property_bag", "PropertyCollection of SpeechConfig"): 3,
    }
    del recognizer, configs


def test_compare_to_reports_growth_per_site(installed: None) -> None:
    """compare_to() gives the live count and change per creation site."""
    first = make_configs(1)
    old = handletrace.snapshot()
    second = make_configs(2)
    diffs = handletrace.snapshot().compare_to(old)
    assert [(d.count, d.count_diff) for d in diffs] == [(6, 4)]
    del first, second


def test_clean_report_says_no_live_handles(installed: None) -> None:
    """A clean run prints one clear line."""
    del make_configs(1)[0]
    out = io.StringIO()
    data = handletrace.report(out)
    assert data.clean
    assert out.getvalue() == "handletrace: no live native handles (created 2, released 2 (del 2))\n"


def test_report_without_install_says_so_first() -> None:
    """report() before install(): the first lines say handletrace is not installed and how
    to install it; nothing reads as an all-clear."""
    out = io.StringIO()
    data = handletrace.report(out)
    lines = out.getvalue().splitlines()
    assert lines == [
        "handletrace is not installed: SDK handles are not being tracked, "
        "so there is nothing to report",
        "    to track them, call handletrace.install() before the program makes SDK objects, "
        "or run it with HANDLETRACE=1",
    ], lines
    assert data.installed is False and data.to_dict()["installed"] is False


def test_report_after_uninstall_says_so_first_and_shows_what_was_tracked() -> None:
    """Handles tracked before uninstall() are still reported, after the not-installed lines."""
    handletrace.install()
    config = sdk_objects.speech_config()
    handletrace.uninstall()
    out = io.StringIO()
    handletrace.report(out, diagnose=False)
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "handletrace is not installed: SDK handles are not being tracked; this report shows "
        "only those tracked while it was installed"
    ), lines
    assert lines[2].startswith("handletrace: 2 live native handles in 1 group"), lines
    del config


def test_text_report_lists_group_kinds_and_stack(installed: None) -> None:
    """The text report shows count, site, kinds and the creation stack."""
    configs = make_configs(2)
    text = io.StringIO()
    handletrace.report(text, diagnose=False) if _has_diagnose() else handletrace.report(text)
    lines = text.getvalue().splitlines()
    assert lines[0].startswith("handletrace: 4 live native handles in 1 group (pid ")
    assert lines[1] == "created 4, released 0"
    line = sdk_objects.speech_config.__code__.co_firstlineno + 1
    assert lines[3] == f"#1  4 handles created at {sdk_objects.__file__}:{line} in speech_config"
    assert "        2 x speech_config  SpeechConfig" in lines
    assert "        2 x property_bag   PropertyCollection of SpeechConfig" in lines
    assert "    Traceback (most recent call last):" in lines
    assert "        return [sdk_objects.speech_config() for _ in range(n)]  # site A" in lines
    del configs


def _has_diagnose() -> bool:
    import inspect

    return "diagnose" in inspect.signature(handletrace.report).parameters


def test_json_report_round_trips_through_from_dict(installed: None) -> None:
    """The JSON form loads back into an equal Report."""
    recognizer = make_recognizer()
    out = io.StringIO()
    data = handletrace.report(out, format="json")
    loaded = Report.from_dict(json.loads(out.getvalue()))
    assert loaded == data
    del recognizer


def test_json_report_has_versioned_schema_and_summary(installed: None) -> None:
    """Top-level schema, version and summary fields are present and exact."""
    recognizer = make_recognizer()
    out = io.StringIO()
    handletrace.report(out, format="json")
    data = json.loads(out.getvalue())
    assert (data["schema"], data["version"]) == ("handletrace.report", 1)
    assert data["summary"]["live"] == 2
    assert data["groups"][0]["kinds"] == [
        {"kind": "recognizer", "owner": "SpeechRecognizer", "count": 1},
        {"kind": "property_bag", "owner": "PropertyCollection of SpeechRecognizer", "count": 1},
    ]
    assert data["groups"][0]["site"]["name"] == "recognizer"
    del recognizer


def test_secret_key_appears_in_no_report(installed: None) -> None:
    """The subscription key passed to SpeechConfig is in neither the text nor the JSON."""
    config = sdk_objects.speech_config()
    text, js = io.StringIO(), io.StringIO()
    handletrace.report(text)
    handletrace.report(js, format="json")
    assert sdk_objects.FAKE_KEY not in text.getvalue()
    assert sdk_objects.FAKE_KEY not in js.getvalue()
    del config


def test_saved_report_whose_group_lists_no_kinds_renders_as_text(installed: None) -> None:
    """A loaded report with an empty kinds list still renders (no max() of nothing)."""
    recognizer = make_recognizer()
    saved = handletrace.build_report(diagnose=False).to_dict()
    saved["groups"][0]["kinds"] = []
    lines = format_text(Report.from_dict(saved)).splitlines()
    assert lines[3].startswith("#1  2 handles created at ")
    assert lines[4].startswith("    age ")
    assert lines[5] == "    Traceback (most recent call last):"
    del recognizer


def test_unknown_format_is_rejected_with_accepted_values(installed: None) -> None:
    """report(format=...) names what it accepts."""
    with pytest.raises(ValueError, match="format must be 'text', 'json' or 'html'; got 'xml'"):
        handletrace.report(io.StringIO(), format="xml")


@pytest.mark.parametrize(
    "payload, message",
    [
        ([], "the top level should be dict, got list"),
        ({"schema": "other"}, "not a handletrace report (schema is 'other')"),
        ({"schema": "handletrace.report", "version": 99}, "report version 99 is not supported"),
        ({"schema": "handletrace.report", "version": 1}, "not a valid handletrace report"),
    ],
)
def test_malformed_report_raises_report_error(payload: Any, message: str) -> None:
    """Loading a malformed report names the source and the problem."""
    with pytest.raises(
        ReportError, match=r"^saved\.json: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        Report.from_dict(payload, source="saved.json")


def test_stats_count_created_released_live_and_peak(installed: None) -> None:
    """stats() per kind: created / released / live / peak."""
    configs = make_configs(3)
    del configs[:2]
    kind = handletrace.stats().kinds["speech_config"]
    assert (kind.created, kind.released, kind.live, kind.peak) == (3, 2, 1, 3)
    del configs
