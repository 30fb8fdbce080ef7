"""Helpers shared by the front ends (pytest plugin, command line): report tidying and the
"cyclic garbage or still reachable" split made with one explicit ``gc.collect()``."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, replace
from typing import Iterable, Sequence, Tuple

from ._analysis.states import CYCLIC_GARBAGE
from ._core.state import TRACKER
from ._report.model import Report

__all__ = ["Collected", "collect_and_split", "module_dir", "trim_frames"]


def module_dir(module: object) -> str:
    """The directory of a module or package, with a trailing separator."""
    path = str(
        getattr(module, "__file__", None)
        or getattr(getattr(module, "__code__", None), "co_filename", "")
    )
    return os.path.join(os.path.dirname(os.path.abspath(path)), "")


def trim_frames(report: Report, prefixes: Sequence[str]) -> Report:
    """The report with the frames of the front end's machinery (pytest, runpy, handletrace)
    removed from every creation stack; nothing else changes."""
    prefixes = tuple(prefixes)
    if not prefixes:
        return report
    groups = []
    for group in report.groups:
        kept = tuple(f for f in group.traceback if not f.filename.startswith(prefixes))
        groups.append(replace(group, traceback=kept) if kept else group)
    return replace(report, groups=tuple(groups))


@dataclass(frozen=True)
class Collected:
    """How the handles a report counts as live fare: cyclic garbage (freed only by a cyclic
    collection) or still reachable. ``checked == cyclic + reachable == report.live``."""

    checked: int
    cyclic: int  #: only a cyclic collection frees them
    reachable: int  #: alive after a collection too

    def notes(self) -> Tuple[str, ...]:
        notes = []
        if self.cyclic:
            notes.append(
                f"{self.cyclic} of {self.checked} handles were cyclic garbage: freed only by the "
                "gc.collect() handletrace ran after the check (in production nothing runs it: "
                "native memory does not trigger a collection)"
            )
        if self.reachable:
            notes.append(
                f"{self.reachable} of {self.checked} handles are still reachable after "
                "gc.collect() (held by a global, a cache, a fixture, a thread or a traceback)"
            )
        return tuple(notes)


def collect_and_split(report: Report, seqs: Iterable[int]) -> Tuple[Report, Collected]:
    """Split the live handles of ``report`` (built from the records ``seqs``) into cyclic
    garbage and still reachable, run one ``gc.collect()``, and return the report with the
    split's notes. One report, one moment: every count in it agrees.

    With a diagnosis the split is the diagnosis's own (made at the moment the report
    describes; the collection only frees the cycles). Without one, the collection decides:
    handles released before it (by SDK callbacks still running) are dropped from the live
    count and said so, never counted twice.
    """
    wanted = frozenset(seqs)
    summary = report.diagnosis
    if summary is not None:
        counts = dict(summary.classification)
        cyclic = counts.get(CYCLIC_GARBAGE, 0)
        collected = Collected(report.live, cyclic, report.live - cyclic)
        gc.collect()
        return replace(report, notes=(*report.notes, *collected.notes())), collected
    registry = TRACKER.registry
    before = wanted & registry.live_seqs()
    gc.collect()
    still = len(before & registry.live_seqs())
    collected = Collected(len(before), len(before) - still, still)
    notes = list(collected.notes())
    released = len(wanted) - len(before)
    if released:
        notes.insert(
            0,
            f"{released} of the {len(wanted)} handles on record when this report began were "
            "released while it was built (SDK callbacks still running): not counted as live",
        )
    return replace(report, live=len(before), notes=(*report.notes, *notes)), collected
