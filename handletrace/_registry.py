"""The live registry of native handles: one record per handle, thread-safe and re-entrant.

SDK callbacks run on native threads and ``__del__`` can run inside any allocation (a garbage
collection may start inside the registry's own code), so every mutation holds an ``RLock``
for a few dictionary operations only, and never allocates a GC-tracked object while the
live table is being iterated (copies use ``dict.copy()``, which is done in C).
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from ._compat import DATACLASS_SLOTS
from ._stacks import EMPTY_TRACEBACK, Traceback

__all__ = ["HandleRecord", "KindStats", "Registry", "Stats", "Totals", "RELEASE_CAUSES"]

#: Why a handle left the registry.
#: ``del``: its ``_Handle`` was finalised by reference counting;
#: ``gc``: finalised by a cyclic garbage collection;
#: ``forced``: released by handletrace (``dispose()`` / ``release_all()``);
#: ``direct``: a release function was called directly with its address (e.g. async handles);
#: ``untracked``: its ``_Handle`` was finalised while handletrace was not installed.
RELEASE_CAUSES = ("del", "gc", "forced", "direct", "untracked")


#: A record's fields in ``HandleRecord`` field order, without ``created_at`` (what the
#: wrappers register; see ``Registry.add``).
RecordFields = Tuple[Any, ...]


def _dead_ref() -> None:
    return None


@dataclass(frozen=True, **DATACLASS_SLOTS)
class HandleRecord:
    """One live native handle: what it is, who owns it, where and when it was created."""

    seq: int
    kind: str
    address: int
    owner: str
    parent: Optional[str]
    thread_id: int
    thread_name: str
    created_at: float
    created_monotonic: float
    traceback: Traceback = field(default=EMPTY_TRACEBACK, compare=False)
    #: ``"handle"`` for an ``interop._Handle``; ``"future"`` for the async handle of a
    #: ``ResultFuture`` (released only when its ``get()`` runs).
    source: str = "handle"
    owner_ref: Callable[[], Any] = field(default=_dead_ref, compare=False, repr=False)
    parent_ref: Callable[[], Any] = field(default=_dead_ref, compare=False, repr=False)
    handle_ref: Callable[[], Any] = field(default=_dead_ref, compare=False, repr=False)

    def age(self, now: Optional[float] = None) -> float:
        """Seconds since the handle was created."""
        return (time.monotonic() if now is None else now) - self.created_monotonic

    @property
    def owner_label(self) -> str:
        """The owner class, and the SDK object it belongs to: ``PropertyCollection of X``."""
        return f"{self.owner} of {self.parent}" if self.parent else self.owner

    @property
    def address_hex(self) -> str:
        return f"0x{self.address:x}"


@dataclass(frozen=True, **DATACLASS_SLOTS)
class KindStats:
    """Counters for one handle kind."""

    kind: str
    created: int
    released: int
    live: int
    peak: int


@dataclass(frozen=True, **DATACLASS_SLOTS)
class Stats:
    """Counters since the registry was last cleared."""

    kinds: Mapping[str, KindStats]
    released_by_cause: Mapping[str, int]
    instrumentation_errors: int
    created: int
    released: int
    live: int


@dataclass(frozen=True, **DATACLASS_SLOTS)
class Totals:
    """Counters since the registry was made: ``clear()`` does not reset them, so they never
    go down (what cumulative metrics need). ``live`` is per kind now, 0 for kinds seen before."""

    created: Mapping[str, int]
    released_by_cause: Mapping[str, int]
    live: Mapping[str, int]
    instrumentation_errors: int


def _add_into(total: Dict[str, int], counts: Mapping[str, int]) -> None:
    for key, count in counts.items():
        total[key] = total.get(key, 0) + count


class Registry:
    """All handle bookkeeping; one instance lives on the global tracker."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._live: Dict[int, Union[HandleRecord, RecordFields]] = {}
        self._by_address: Dict[int, int] = {}
        # kind -> [created, released, live, peak]: one lookup per event on the hot path.
        self._counts: Dict[str, List[int]] = {}
        self._by_cause: Dict[str, int] = dict.fromkeys(RELEASE_CAUSES, 0)
        self.instrumentation_errors = 0
        self.last_errors: list[str] = []
        # What clear() forgot, kept for totals(): cumulative counters must never go down.
        self._cleared_created: Dict[str, int] = {}
        self._cleared_by_cause: Dict[str, int] = dict.fromkeys(RELEASE_CAUSES, 0)
        self._cleared_errors = 0

    # -- mutation -------------------------------------------------------------------------
    def next_seq(self) -> int:
        # No lock: next() on an itertools.count is atomic under the GIL (one C call).
        self._last_seq = seq = next(self._seq)
        return seq

    def add(self, record: Union[HandleRecord, RecordFields]) -> None:
        """Register a live handle: a record, or its fields (``HandleRecord`` order, without
        ``created_at``, which is worked out from ``created_monotonic``).

        Fields (what the wrappers pass) are turned into a ``HandleRecord`` only when a
        record is asked for: building the frozen dataclass costs more than all the rest of
        the bookkeeping per handle, and most handles are released without being looked at.
        """
        if type(record) is tuple:
            seq, kind, address = record[0], record[1], record[2]
        else:
            seq, kind, address = record.seq, record.kind, record.address  # type: ignore[union-attr]
        with self._lock:
            self._live[seq] = record
            self._by_address[address] = seq
            counts = self._counts.get(kind)
            if counts is None:
                counts = self._counts[kind] = [0, 0, 0, 0]
            counts[0] += 1
            live = counts[2] = counts[2] + 1
            if live > counts[3]:
                counts[3] = live

    def release(self, seq: int, cause: str) -> Optional[HandleRecord]:
        """Remove the record ``seq``; ``None`` if it was already gone (never counted twice)."""
        entry = self._pop(seq, cause)
        return None if entry is None else _as_record(entry)

    def discard(self, seq: int, cause: str) -> bool:
        """Like ``release()`` without building the record: ``False`` if it was already gone."""
        return self._pop(seq, cause) is not None

    def _pop(self, seq: int, cause: str) -> Union[HandleRecord, RecordFields, None]:
        with self._lock:
            entry = self._live.pop(seq, None)
            if entry is None:
                return None
            if type(entry) is tuple:
                kind, address = entry[1], entry[2]
            else:
                kind, address = entry.kind, entry.address  # type: ignore[union-attr]
            if self._by_address.get(address) == seq:
                del self._by_address[address]
            counts = self._counts.get(kind)
            if counts is not None:  # never inserts: stats() may be iterating _counts
                counts[1] += 1
                counts[2] -= 1
            self._by_cause[cause] = self._by_cause.get(cause, 0) + 1
        return entry

    def find_address(self, address: int) -> Optional[HandleRecord]:
        """The newest live record at ``address`` (addresses are reused after release)."""
        with self._lock:
            seq = self._by_address.get(address)
            entry = None if seq is None else self._live.get(seq)
        return None if entry is None else _as_record(entry)

    def count_error(self, where: str, exc: BaseException) -> None:
        """Count an instrumentation failure; keep a short description of the latest few."""
        with self._lock:
            self.instrumentation_errors += 1
            if len(self.last_errors) < 20:
                # Type and location only: an exception message may quote an argument value.
                self.last_errors.append(f"{where}: {type(exc).__name__}")

    def clear(self) -> None:
        """Forget every record and counter (sequence numbers and ``totals()`` keep increasing)."""
        with self._lock:
            _add_into(self._cleared_created, self._column(0))
            _add_into(self._cleared_by_cause, self._by_cause)
            self._cleared_errors += self.instrumentation_errors
            self._live.clear()
            self._by_address.clear()
            self._counts.clear()
            self._by_cause = dict.fromkeys(RELEASE_CAUSES, 0)
            self.instrumentation_errors = 0
            self.last_errors = []

    def reset_lock_after_fork(self) -> None:
        # A lock held by another thread at fork() time would never be released in the child.
        self._lock = threading.RLock()

    # -- queries --------------------------------------------------------------------------
    def _column(self, index: int) -> Dict[str, int]:
        """One counter per kind (0 created, 1 released, 2 live, 3 peak); caller holds the lock."""
        return {kind: counts[index] for kind, counts in self._counts.items()}

    def live_records(self) -> list[HandleRecord]:
        """A copy of the live records in creation order."""
        with self._lock:
            table = self._live.copy()
        records = [_as_record(table[seq]) for seq in sorted(table)]
        # Keep the built records, so the next snapshot does not build them again.
        built = [record for record in records if table[record.seq] is not record]
        if built:
            with self._lock:
                live = self._live
                for record in built:
                    if live.get(record.seq) is table[record.seq]:
                        live[record.seq] = record
        return records

    def live_count(self) -> int:
        return len(self._live)

    def last_seq(self) -> int:
        """The sequence number of the newest record (a cheap "created since" marker)."""
        return self._last_seq

    def totals(self) -> Totals:
        """Created per kind, released per cause and errors since the registry was made."""
        with self._lock:
            created = self._column(0)
            by_cause = self._by_cause.copy()
            live = self._column(2)
            errors = self.instrumentation_errors + self._cleared_errors
            cleared_created = self._cleared_created.copy()
            cleared_by_cause = self._cleared_by_cause.copy()
        _add_into(created, cleared_created)
        _add_into(by_cause, cleared_by_cause)
        return Totals(
            created=created,
            released_by_cause=by_cause,
            live={kind: live.get(kind, 0) for kind in sorted(created)},
            instrumentation_errors=errors,
        )

    def stats(self) -> Stats:
        with self._lock:
            created = self._column(0)
            released = self._column(1)
            live = self._column(2)
            peak = self._column(3)
            by_cause = dict(self._by_cause)
            errors = self.instrumentation_errors
        kinds = {
            kind: KindStats(
                kind=kind,
                created=created.get(kind, 0),
                released=released.get(kind, 0),
                live=live.get(kind, 0),
                peak=peak.get(kind, 0),
            )
            for kind in sorted(set(created) | set(live))
        }
        return Stats(
            kinds=kinds,
            released_by_cause=by_cause,
            instrumentation_errors=errors,
            created=sum(created.values()),
            released=sum(released.values()),
            live=sum(live.values()),
        )


def _as_record(entry: Union[HandleRecord, RecordFields]) -> HandleRecord:
    if type(entry) is not tuple:
        return entry  # type: ignore[return-value]
    # The fields carry the monotonic creation time only (one float less per live handle);
    # the wall-clock time is worked out from it (a clock step since would shift it).
    (seq, kind, address, owner, parent, thread_id, thread_name_, monotonic, traceback, source,
     owner_ref, parent_ref, handle_ref) = entry  # fmt: skip
    return HandleRecord(
        seq=seq,
        kind=kind,
        address=address,
        owner=owner,
        parent=parent,
        thread_id=thread_id,
        thread_name=thread_name_,
        created_at=monotonic + (time.time() - time.monotonic()),
        created_monotonic=monotonic,
        traceback=traceback,
        source=source,
        owner_ref=owner_ref,
        parent_ref=parent_ref,
        handle_ref=handle_ref,
    )


def make_weakref(obj: Any) -> Callable[[], Any]:
    """A weak reference to ``obj``, or a callable returning ``None`` if it cannot have one."""
    if obj is None:
        return _dead_ref
    try:
        return weakref.ref(obj)
    except TypeError:
        return _dead_ref


def thread_name(ident: int) -> str:
    """The thread's name without creating a ``_DummyThread`` for native SDK threads."""
    thread = threading._active.get(ident)  # type: ignore[attr-defined]
    return thread.name if thread is not None else f"native-{ident}"
