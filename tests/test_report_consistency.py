"""One report, one moment: handles released while a report is built (an SDK callback
thread still running at exit, say) are shown as released, never counted as live, and every
count and note of the report agrees (#14.3)."""

from __future__ import annotations

import gc
import re
from typing import Any, Dict, List

import handletrace
from handletrace._core.state import TRACKER
from handletrace._frontend import collect_and_split
from handletrace._sdk.records import live_records

from . import sdk_objects


def _leak(n: int) -> None:
    for _ in range(n):
        sdk_objects.make_leaky_transcriber([])


def _counts(report: Any) -> Dict[str, int]:
    assert report.diagnosis is not None
    return dict(report.diagnosis.classification)


def _snapshot_then_release(held: List[Any]) -> Any:
    """A snapshot of 3 leaked transcribers and 2 held ones; then the held ones are released
    (what an SDK callback thread does while the report is being built)."""
    _leak(3)
    held.extend(sdk_objects.transcriber() for _ in range(2))
    snapshot = handletrace.snapshot()
    for transcriber in held:
        handletrace.dispose(transcriber)
    held.clear()
    return snapshot


def test_handles_released_after_the_snapshot_are_not_counted_live(
    installed: None, no_gc: None
) -> None:
    """live = records - released; the classification adds up; a note says what happened."""
    held: List[Any] = []
    snapshot = _snapshot_then_release(held)
    report = handletrace.build_report(snapshot)
    counts = _counts(report)
    assert len(snapshot) == 10, [r.kind for r in snapshot.records]
    assert counts == {"cyclic-garbage": 6, "released": 4}, counts
    assert report.live == 6, (report.live, counts)
    assert sum(counts.values()) - counts["released"] == report.live
    assert any(
        "4 of the 10 handles on record when this report began were released" in note
        for note in report.notes
    ), report.notes
    gc.collect()


def test_the_collection_split_agrees_with_the_report(installed: None, no_gc: None) -> None:
    """The 'N of M handles were cyclic garbage' note counts exactly the report's live ones."""
    held: List[Any] = []
    snapshot = _snapshot_then_release(held)
    report = handletrace.build_report(snapshot)
    report, collected = collect_and_split(report, [r.seq for r in snapshot.records])
    assert (collected.checked, collected.cyclic, collected.reachable) == (6, 6, 0), collected
    notes = "\n".join(report.notes)
    assert "6 of 6 handles were cyclic garbage" in notes, notes
    assert live_records(TRACKER.registry) == []


def test_without_a_diagnosis_the_collection_drops_released_handles_from_live(
    installed: None, no_gc: None
) -> None:
    """No diagnosis: the handles released before the collection are left out of the live
    count and said so; cyclic + reachable = live."""
    held: List[Any] = []
    snapshot = _snapshot_then_release(held)
    report = handletrace.build_report(snapshot, diagnose=False)
    assert report.live == 10
    report, collected = collect_and_split(report, [r.seq for r in snapshot.records])
    assert (report.live, collected.cyclic, collected.reachable) == (6, 6, 0), collected
    text = "\n".join(report.notes)
    assert re.search(r"4 of the 10 handles .* released while it was built", text), text
