"""Helpers shared by the front ends (pytest plugin, command line): report tidying and the
"cyclic garbage or still reachable" split made with one explicit ``gc.collect()``."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, replace
from typing import Iterable, Sequence, Tuple

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
    """How handles alive at a check fared in the ``gc.collect()`` that followed it."""

    checked: int
    cyclic: int  #: freed by the collection: they were cyclic garbage
    reachable: int  #: still alive after it

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


def collect_and_split(seqs: Iterable[int]) -> Collected:
    """Run ``gc.collect()`` and count which of the records ``seqs`` it released."""
    wanted = frozenset(seqs)
    gc.collect()
    still = len(wanted & TRACKER.registry.live_seqs())
    return Collected(len(wanted), len(wanted) - still, still)
