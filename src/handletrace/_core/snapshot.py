"""Immutable snapshots of the live registry, grouping by creation site, and comparison."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, Mapping, Optional, Tuple

from .blocking import InFlight
from .compat import DATACLASS_SLOTS
from .registry import HandleRecord, Stats
from .stacks import Frame, Traceback

__all__ = ["GroupDiff", "HandleGroup", "Snapshot", "site_of"]

SiteKey = Tuple[str, int, str]


def site_of(record: HandleRecord) -> SiteKey:
    """Where a record was created: (file, line, function) of its origin frame.

    Records created without a captured stack (sampling) are grouped by kind and owner.
    """
    origin = record.traceback.origin
    if origin is None:
        return ("<no stack captured>", 0, f"{record.owner or record.kind}")
    return (origin.filename, origin.lineno, origin.name)


@dataclass(frozen=True, **DATACLASS_SLOTS)
class HandleGroup:
    """Live handles created at one site."""

    site: SiteKey
    records: Tuple[HandleRecord, ...]

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def origin(self) -> Optional[Frame]:
        filename, lineno, name = self.site
        return Frame(filename, lineno, name) if lineno else None

    @property
    def traceback(self) -> Traceback:
        """The creation stack of the group's oldest handle."""
        return self.records[0].traceback

    def kind_counts(self) -> Dict[Tuple[str, str], int]:
        """How many handles of each (kind, owner) the group holds, in first-seen order."""
        counts: Dict[Tuple[str, str], int] = {}
        for record in self.records:
            key = (record.kind, record.owner_label)
            counts[key] = counts.get(key, 0) + 1
        return counts


@dataclass(frozen=True, **DATACLASS_SLOTS)
class GroupDiff:
    """How the live handles of one site changed between two snapshots."""

    site: SiteKey
    count: int
    count_diff: int


@dataclass(frozen=True)
class Snapshot:
    """A copy of the live records at one moment, in creation order."""

    records: Tuple[HandleRecord, ...]
    taken_at: float
    taken_monotonic: float
    stats: Optional[Stats] = None
    #: seq -> its native release in flight (the handle is ``releasing``, still live).
    releasing: Mapping[int, InFlight] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        records: Iterable[HandleRecord],
        stats: Optional[Stats] = None,
        releasing: Optional[Mapping[int, InFlight]] = None,
    ) -> Snapshot:
        records = tuple(records)
        now = time.monotonic()
        seqs = {record.seq for record in records}
        in_flight = {seq: r for seq, r in (releasing or {}).items() if seq in seqs}
        return cls(records, time.time(), now, stats, in_flight)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[HandleRecord]:
        return iter(self.records)

    def age(self, record: HandleRecord) -> float:
        """The record's age when the snapshot was taken."""
        return record.age(self.taken_monotonic)

    def filter(
        self,
        *,
        kinds: Optional[Iterable[str]] = None,
        owners: Optional[Iterable[str]] = None,
        since: Optional[int] = None,
        older_than: Optional[float] = None,
        predicate: Optional[Callable[[HandleRecord], bool]] = None,
    ) -> Snapshot:
        """A new snapshot with only the matching records.

        ``kinds``/``owners``: keep these kinds / owner class names; ``since``: keep records
        with a sequence number above this marker; ``older_than``: keep records at least this
        many seconds old; ``predicate``: any further test.
        """
        kind_set = (
            None if kinds is None else frozenset([kinds] if isinstance(kinds, str) else kinds)
        )
        owner_set = (
            None if owners is None else frozenset([owners] if isinstance(owners, str) else owners)
        )
        now = self.taken_monotonic

        def keep(record: HandleRecord) -> bool:
            return (
                (kind_set is None or record.kind in kind_set)
                and (owner_set is None or record.owner in owner_set)
                and (since is None or record.seq > since)
                and (older_than is None or record.age(now) >= older_than)
                and (predicate is None or predicate(record))
            )

        kept = tuple(r for r in self.records if keep(r))
        releasing = {r.seq: self.releasing[r.seq] for r in kept if r.seq in self.releasing}
        return Snapshot(kept, self.taken_at, now, self.stats, releasing)

    def groups(self) -> list[HandleGroup]:
        """Live handles grouped by creation site, largest group first."""
        by_site: Dict[SiteKey, list[HandleRecord]] = {}
        for record in self.records:
            by_site.setdefault(site_of(record), []).append(record)
        groups = [HandleGroup(site, tuple(records)) for site, records in by_site.items()]
        groups.sort(key=lambda g: (-g.count, g.records[0].seq))
        return groups

    def count_by_kind(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for record in self.records:
            counts[record.kind] = counts.get(record.kind, 0) + 1
        return dict(sorted(counts.items()))

    def compare_to(self, old: Snapshot) -> list[GroupDiff]:
        """Per creation site, live counts now and the change since ``old``; biggest growth first."""
        now_counts: Dict[SiteKey, int] = {}
        for record in self.records:
            key = site_of(record)
            now_counts[key] = now_counts.get(key, 0) + 1
        old_counts: Dict[SiteKey, int] = {}
        for record in old.records:
            key = site_of(record)
            old_counts[key] = old_counts.get(key, 0) + 1
        diffs = [
            GroupDiff(
                site, now_counts.get(site, 0), now_counts.get(site, 0) - old_counts.get(site, 0)
            )
            for site in {**old_counts, **now_counts}
        ]
        diffs = [d for d in diffs if d.count or d.count_diff]
        diffs.sort(key=lambda d: (-abs(d.count_diff), -d.count, d.site))
        return diffs
