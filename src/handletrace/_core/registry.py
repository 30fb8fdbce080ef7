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
from dataclasses import dataclass, field, fields
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Tuple,
)

from .compat import DATACLASS_SLOTS
from .stacks import EMPTY_TRACEBACK, Traceback

__all__ = [
    "CAUSE_COLUMN",
    "COUNTER_COLUMNS",
    "COUNTER_NAMES",
    "CREATED_COLUMN",
    "ENTRY_CODE",
    "ENTRY_HANDLE",
    "ENTRY_KIND",
    "ENTRY_MONOTONIC",
    "ENTRY_SEQ",
    "ENTRY_THREAD",
    "ENTRY_TRACEBACK",
    "FIRST_CAUSE_COLUMN",
    "FUTURE_ENTRY",
    "HANDLE_ENTRY",
    "HANDLE_ENTRY_LEN",
    "HandleRecord",
    "KindStats",
    "LIVE_COLUMN",
    "PEAK_COLUMN",
    "RELEASED_COLUMN",
    "RELEASE_CAUSES",
    "RELEASING_CAUSE_COLUMN",
    "RELEASING_ENTRY",
    "RELEASING_STARTED",
    "RELEASING_THREAD",
    "Registry",
    "ReleaseCause",
    "Source",
    "Stats",
    "Totals",
    "pop_record",
]

#: Why a handle left the registry.
#: ``del``: its ``_Handle`` was finalised by reference counting;
#: ``gc``: finalised by a cyclic garbage collection;
#: ``forced``: released by handletrace (``dispose()`` / ``release_all()``);
#: ``direct``: a release function was called directly with its address (e.g. async handles);
#: ``untracked``: its ``_Handle`` was finalised while handletrace was not installed.
RELEASE_CAUSES = ("del", "gc", "forced", "direct", "untracked")
ReleaseCause = Literal["del", "gc", "forced", "direct", "untracked"]
#: Where a record comes from: an ``interop._Handle`` or a ``ResultFuture``'s async handle.
Source = Literal["handle", "future"]

#: The counters kept per kind, one row per kind (a release updates one row only): created,
#: released, live, peak, then one column per release cause. The C hooks write the first four
#: by position (``_speedups.COUNTER_FIELDS`` names them) and a cause's column by the index
#: they are given (``CAUSE_COLUMN``); a test checks that the two agree.
COUNTER_NAMES = ("created", "released", "live", "peak", *RELEASE_CAUSES)
COUNTER_COLUMNS = len(COUNTER_NAMES)
CREATED_COLUMN, RELEASED_COLUMN, LIVE_COLUMN, PEAK_COLUMN = (
    COUNTER_NAMES.index(name) for name in ("created", "released", "live", "peak")
)
CAUSE_COLUMN: Mapping[str, int] = {cause: COUNTER_NAMES.index(cause) for cause in RELEASE_CAUSES}
FIRST_CAUSE_COLUMN = min(CAUSE_COLUMN.values())

#: A ``_Handle``'s entry in the live table, as the ``_Handle.__init__`` hooks write it (the C
#: hooks build the same tuple: ``_speedups.ENTRY_FIELDS``, checked by a test):
#: ``thread`` is the ``threading.Thread`` that made the handle or, for a native thread, its
#: ident; ``code`` the code object of the SDK function that called ``_Handle()``;
#: ``monotonic`` its ``time.monotonic()``; ``handle`` the ctypes handle (not the ``_Handle``,
#: which is found by address: ``Registry.handle_index``).
HANDLE_ENTRY = ("seq", "kind", "handle", "code", "thread", "monotonic", "traceback")
HANDLE_ENTRY_LEN = len(HANDLE_ENTRY)
(
    ENTRY_SEQ,
    ENTRY_KIND,
    ENTRY_HANDLE,
    ENTRY_CODE,
    ENTRY_THREAD,
    ENTRY_MONOTONIC,
    ENTRY_TRACEBACK,
) = range(HANDLE_ENTRY_LEN)


#: Attribute on a ``ResultFuture`` holding its record's sequence number (a ``_Handle``'s is
#: found by its address: ``Registry.handle_index``). A second finalisation can never count
#: twice: the registry releases a sequence number once.
SEQ_ATTR = "_handletrace_seq"

#: An entry of the live table: ``HANDLE_ENTRY`` or ``FUTURE_ENTRY`` (see ``Registry``).
RecordFields = Tuple[Any, ...]


def _dead_ref() -> None:
    return None


def address_of(handle: Any) -> int:
    """The native address a ctypes handle (or a plain int) holds; 0 if none."""
    value = getattr(handle, "value", handle)
    return value if isinstance(value, int) else 0


@dataclass(frozen=True, **DATACLASS_SLOTS)
class HandleRecord:
    """One live native handle: what it is, who owns it, where and when it was created."""

    seq: int
    kind: str
    address: int
    #: Class of the SDK object holding the ``_Handle`` (found when the record is built; if
    #: none holds it any more, the class whose method made it; "" if neither is known).
    owner: str
    #: Class of the SDK object holding the owner (a ``PropertyCollection``'s recognizer).
    parent: Optional[str]
    thread_id: int
    thread_name: str
    created_at: float
    created_monotonic: float
    traceback: Traceback = field(default=EMPTY_TRACEBACK, compare=False)
    #: ``"handle"`` for an ``interop._Handle``; ``"future"`` for the async handle of a
    #: ``ResultFuture`` (released only when its ``get()`` runs).
    source: Source = "handle"
    owner_ref: Callable[[], Any] = field(default=_dead_ref, compare=False, repr=False)
    parent_ref: Callable[[], Any] = field(default=_dead_ref, compare=False, repr=False)
    handle_ref: Callable[[], Any] = field(default=_dead_ref, compare=False, repr=False)

    def age(self, now: Optional[float] = None) -> float:
        """Seconds since the handle was created."""
        return (time.monotonic() if now is None else now) - self.created_monotonic

    @property
    def owner_label(self) -> str:
        """The owner class, and the SDK object holding the owner: ``PropertyCollection of X``."""
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


#: A release in flight (``Registry.releasing_table``): when it started (``time.monotonic``),
#: the thread running it (its ``threading.Thread``, or an ident for a native thread) and the
#: counters' column of its cause. Written by the ``__del__`` hooks and by ``dispose()``.
RELEASING_ENTRY = ("started", "thread", "cause_column")
RELEASING_STARTED, RELEASING_THREAD, RELEASING_CAUSE_COLUMN = range(len(RELEASING_ENTRY))

#: An async handle's entry (a ``ResultFuture``'s): the ``HandleRecord`` fields in order,
#: without ``created_at`` (worked out from ``created_monotonic``). ``seq`` and ``kind`` are
#: where a ``_Handle``'s entry has them; the length tells the two layouts apart.
FUTURE_ENTRY = tuple(f.name for f in fields(HandleRecord) if f.name != "created_at")
FUTURE_ADDRESS = FUTURE_ENTRY.index("address")
FUTURE_SOURCE = FUTURE_ENTRY.index("source")


def pop_record(live: Dict[int, Any], counts: Mapping[str, Any], seq: int, column: int) -> Any:
    """Remove the entry ``seq`` from ``live`` and count its release in its kind's row of
    ``counts`` (released + 1, live - 1, and ``column``, its cause's, + 1); the entry, or
    ``None`` if it was gone (a release is never counted twice).

    The specification of ``_speedups.pop_record``, which does the same in one C call (atomic
    with the C hooks); here the caller holds the registry's lock. A kind without a row is
    popped and not counted (no row is ever inserted here: ``stats()`` may be iterating)."""
    if column < FIRST_CAUSE_COLUMN:
        raise ValueError(f"pop_record: cause columns come after the first {FIRST_CAUSE_COLUMN}")
    entry = live.pop(seq, None)
    if entry is not None:
        row = counts.get(entry[ENTRY_KIND])
        if row is not None:
            row[RELEASED_COLUMN] += 1
            row[LIVE_COLUMN] -= 1
            row[column] += 1
    return entry


def _cause_totals(rows: List[Tuple[str, List[int]]]) -> Dict[str, int]:
    """Releases per cause, all kinds of ``rows`` (kind, counters) together."""
    return {cause: sum(c[CAUSE_COLUMN[cause]] for _, c in rows) for cause in RELEASE_CAUSES}


def _add_into(total: Dict[str, int], counts: Mapping[str, int]) -> None:
    for key, count in counts.items():
        total[key] = total.get(key, 0) + count


class Registry:
    """All handle bookkeeping; one instance lives on the global tracker.

    Live entries are tuples, turned into ``HandleRecord`` objects only when records are
    asked for (building one costs more than all the rest of the bookkeeping per handle,
    and most handles are released without being looked at). Two layouts:

    - a ``_Handle``'s entry, written by the ``_Handle.__init__`` hook on the hot path:
      ``HANDLE_ENTRY``; ``handle_index`` maps the ``_Handle``'s address to ``seq``; the
      ``_Handle`` itself, its owner and parent are found when the record is built
      (``_sdk/owners.py``), not when the handle is made;
    - a ``ResultFuture``'s async handle: ``FUTURE_ENTRY`` (see ``add()``).

    The hooks (``_instrument/hooks.py``: Python, or the C accelerator ``_speedups``) insert
    and pop entries and bump the counters of this object's containers directly; everything
    that changes them holds ``lock``, the Python hooks too, and the C hooks need none (the
    GIL makes each of them atomic).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._live: Dict[int, RecordFields] = {}
        self._built: Dict[int, HandleRecord] = {}
        # Addresses of async handles (ResultFuture records): a direct call of a release
        # function finds its record here. ``_Handle`` entries are never released that way.
        self._by_address: Dict[int, int] = {}
        # kind -> its counters (see COUNTER_COLUMNS): one lookup per event on the hot path.
        # A list, or with the C hooks a ``_speedups.Counters`` (the same, as C integers).
        # A row is never replaced or removed while hooks are in place (the C hooks remember
        # rows): clear() zeroes it, and an all-zero row counts as no row.
        self._counts: Dict[str, Any] = {}
        self._new_row: Callable[[List[int]], Any] = list
        # id(_Handle) -> seq of its record: a dict, or with the C hooks a
        # ``_speedups.HandleIndex`` (the same, keyed by the address in C).
        self._handle_seqs: Any = {}
        self.instrumentation_errors = 0
        self.last_errors: list[str] = []
        # What clear() forgot, kept for totals(): cumulative counters must never go down.
        self._cleared_created: Dict[str, int] = {}
        self._cleared_by_cause: Dict[str, int] = dict.fromkeys(RELEASE_CAUSES, 0)
        self._cleared_errors = 0
        # pop_record, or the C accelerator's (atomic with its hooks) when it is in use.
        self._pop_record: Callable[..., Any] = pop_record
        # Native releases in flight: seq -> RELEASING_ENTRY. The record stays live (counted,
        # listed) until its release returns; the hooks and dispose() add and remove these.
        # A dict, or with the C hooks a ``_speedups.Releasing`` (the same mapping in C).
        self._releasing: Any = {}

    # -- what the hooks share -------------------------------------------------------------
    @property
    def seq_counter(self) -> Iterator[int]:
        return self._seq

    @property
    def live_table(self) -> Dict[int, RecordFields]:
        return self._live

    @property
    def counts_table(self) -> Dict[str, Any]:
        return self._counts

    @property
    def handle_index(self) -> Any:
        return self._handle_seqs

    @property
    def releasing_table(self) -> Any:
        return self._releasing

    @property
    def lock(self) -> threading.RLock:
        """What the Python hooks hold while they change the containers (never replaced: a
        fork re-initialises it in place, see ``reset_lock_after_fork``)."""
        return self._lock

    def use_accelerator(self, speedups: Any) -> None:
        """Keep counters as the C accelerator's ``Counters`` and pop entries with its
        ``pop_record`` (atomic with its hooks); ``None``: lists and Python, for the Python
        hooks. Counters and the handle index are carried over (before hooks are made: the
        hooks keep the containers they are given)."""
        with self._lock:
            self._pop_record = pop_record if speedups is None else speedups.pop_record
            new_row = self._new_row = list if speedups is None else speedups.Counters
            for kind, row in self._counts.copy().items():
                if type(row) is not new_row:
                    self._counts[kind] = new_row(list(row))
            index_type = dict if speedups is None else speedups.HandleIndex
            index = self._handle_seqs
            if type(index) is not index_type:
                # dict.copy() / HandleIndex.items(): one C call, atomic under the GIL.
                pairs = index.copy().items() if isinstance(index, dict) else index.items()
                self._handle_seqs = index_type(pairs)
            releasing_type = dict if speedups is None else speedups.Releasing
            if type(self._releasing) is not releasing_type:
                self._releasing = releasing_type(self._releasing.copy().items())

    def new_kind(self, kind: str) -> Any:
        """The counters of ``kind``, created if new (the hooks call this for a new kind)."""
        with self._lock:
            counts = self._counts.get(kind)
            if counts is None:
                counts = self._counts[kind] = self._new_row([0] * COUNTER_COLUMNS)
            return counts

    # -- mutation -------------------------------------------------------------------------
    def next_seq(self) -> int:
        # No lock: next() on an itertools.count is atomic under the GIL (one C call).
        return next(self._seq)

    def seq_of_handle(self, handle_obj: Any) -> Optional[int]:
        """The sequence number of the live record of ``handle_obj`` (a ``_Handle``), if any.

        Checked against the record: an index entry left by a ``_Handle`` that was finalised
        unseen (while handletrace was not installed) names another object at that address,
        and that object holds another ctypes handle than the record does."""
        seq = self._handle_seqs.get(id(handle_obj))
        entry = None if seq is None else self._live.get(seq)
        if entry is None or len(entry) != HANDLE_ENTRY_LEN:
            return None
        holds = getattr(handle_obj, "_Handle__handle", None)
        return seq if holds is entry[ENTRY_HANDLE] else None  # type: ignore[no-any-return]

    def add(self, fields: RecordFields) -> None:
        """Register an async handle: ``FUTURE_ENTRY``, the ``HandleRecord`` fields in order
        without ``created_at`` (worked out from ``created_monotonic``)."""
        seq = fields[ENTRY_SEQ]
        with self._lock:
            self._live[seq] = fields
            self._by_address[fields[FUTURE_ADDRESS]] = seq
            self._count_new(fields[ENTRY_KIND])

    def _count_new(self, kind: str) -> None:
        # Caller holds the lock.
        counts = self._counts.get(kind)
        if counts is None:
            counts = self._counts[kind] = self._new_row([0] * COUNTER_COLUMNS)
        counts[CREATED_COLUMN] += 1
        live = counts[LIVE_COLUMN] = counts[LIVE_COLUMN] + 1
        if live > counts[PEAK_COLUMN]:
            counts[PEAK_COLUMN] = live

    def release(self, seq: int, cause: str) -> Optional[str]:
        """Remove the record ``seq`` and return its kind; ``None`` if it was already gone
        (a release is never counted twice). No record is built."""
        column = CAUSE_COLUMN[cause]
        with self._lock:
            entry = self._pop(seq, column)
            if entry is None:
                return None
            self._built.pop(seq, None)
        return entry[ENTRY_KIND]  # type: ignore[no-any-return]

    def begin_release(self, seq: int, cause: str, thread: Any, started: float) -> bool:
        """Mark the record ``seq`` as releasing (its native release starts now on ``thread``:
        a ``threading.Thread`` or an ident); ``False`` if it is not live or already is."""
        with self._lock:
            if seq not in self._live or seq in self._releasing:
                return False
            self._releasing[seq] = (started, thread, CAUSE_COLUMN[cause])
            return True

    def end_release(self, seq: int) -> Optional[RecordFields]:
        """The release of ``seq`` marked by :meth:`begin_release` returned: remove and count
        it (with the cause it began with); its entry, or ``None`` if it was not releasing."""
        with self._lock:
            marked = self._releasing.pop(seq, None)
            if marked is None:
                return None
            entry = self._pop(seq, int(marked[RELEASING_CAUSE_COLUMN]))
            if entry is not None:
                self._built.pop(seq, None)
            return entry

    def releasing(self) -> Dict[int, Tuple[float, Any, int]]:
        """A copy of the releases in flight: seq -> ``RELEASING_ENTRY``."""
        return dict(self._releasing.copy())  # one C call: atomic under the GIL

    def _pop(self, seq: int, column: int) -> Optional[RecordFields]:
        # Caller holds the lock.
        entry: Optional[RecordFields] = self._pop_record(self._live, self._counts, seq, column)
        if entry is not None and len(entry) != HANDLE_ENTRY_LEN:
            address = entry[FUTURE_ADDRESS]
            if self._by_address.get(address) == seq:
                del self._by_address[address]
        return entry

    def async_entry(self, address: int) -> Optional[RecordFields]:
        """The live async-handle entry at ``address`` (``ResultFuture`` records only)."""
        with self._lock:
            seq = self._by_address.get(address)
            return None if seq is None else self._live.get(seq)

    def count_error(self, where: str, exc: BaseException) -> None:
        """Count an instrumentation failure; keep a short description of the latest few."""
        with self._lock:
            self.instrumentation_errors += 1
            if len(self.last_errors) < 20:
                # Type and location only: an exception message may quote an argument value.
                self.last_errors.append(f"{where}: {type(exc).__name__}")

    def handle_seqs(self) -> List[int]:
        """The sequence numbers of the live ``_Handle`` entries (not async handles)."""
        return [seq for seq, entry in self._live.copy().items() if len(entry) == HANDLE_ENTRY_LEN]

    def release_dead(self, seqs: Collection[int]) -> int:
        """Release (cause ``untracked``) the ``_Handle`` records ``seqs``, whose objects are
        gone (finalised while the hooks were not in place); how many were still on record."""
        dead = [seq for seq in seqs if self.release(seq, "untracked")]
        if dead:
            self._forget_index_entries(dead)
        return len(dead)

    def _forget_index_entries(self, seqs: Collection[int]) -> None:
        # Atomically with the hooks: a C HandleIndex in one call; a dict under the lock (the
        # Python hooks change it under the lock).
        index = self._handle_seqs
        if isinstance(index, dict):
            gone = set(seqs)
            with self._lock:
                # A copy (one C call): a collection may finalise a _Handle in this thread,
                # and its hook changes the index, at any allocation of this loop.
                for address, seq in index.copy().items():
                    if seq in gone and index.get(address) == seq:
                        index.pop(address, None)
        else:
            index.discard_values(seqs)

    def clear(self) -> None:
        """Forget every record and counter (sequence numbers and ``totals()`` keep increasing).

        Containers are emptied in place: the hooks hold them."""
        with self._lock:
            _add_into(self._cleared_created, self._column(CREATED_COLUMN))
            _add_into(self._cleared_by_cause, self._causes())
            self._cleared_errors += self.instrumentation_errors
            self._live.clear()
            self._built.clear()
            self._by_address.clear()
            self._handle_seqs.clear()
            self._releasing.clear()
            for row in self._counts.copy().values():
                for column in range(len(row)):
                    row[column] = 0
            self.instrumentation_errors = 0
            self.last_errors = []

    def reset_lock_after_fork(self) -> None:
        # A lock held by another thread at fork() time would never be released in the child.
        # Re-initialised in place where CPython can (as threading does for its own locks):
        # the Python hooks hold this very lock object.
        reinit = getattr(self._lock, "_at_fork_reinit", None)
        if reinit is not None:
            reinit()
        else:
            self._lock = threading.RLock()

    # -- queries --------------------------------------------------------------------------
    def _column(self, index: int) -> Dict[str, int]:
        """One counter per kind (``index``: a column of ``COUNTER_NAMES``)."""
        return {kind: counts[index] for kind, counts in self._rows()}

    def _rows(self) -> List[Tuple[str, List[int]]]:
        """(kind, counters) of the kinds counted since the registry was last cleared."""
        rows = [(kind, list(counts)) for kind, counts in self._counts.copy().items()]
        return [(kind, counts) for kind, counts in rows if any(counts)]

    def _causes(self) -> Dict[str, int]:
        return _cause_totals(self._rows())

    def live_seqs(self) -> frozenset[int]:
        """The sequence numbers of the live records (no record is built)."""
        return frozenset(self._live.copy())

    def entries(
        self,
        *,
        select: Optional[Callable[[int], bool]] = None,
        source: Optional[str] = None,
        kinds: Optional[Collection[str]] = None,
    ) -> Dict[int, RecordFields]:
        """A copy of the live entries by sequence number; only those whose sequence number
        ``select`` accepts, of ``source`` (``"handle"`` / ``"future"``) and ``kinds``, if given."""
        table = self._live.copy()  # one C call: atomic under the GIL
        if select is not None or source is not None or kinds is not None:
            table = {
                seq: entry
                for seq, entry in table.items()
                if (select is None or select(seq))
                and (source is None or source_of(entry) == source)
                and (kinds is None or entry[ENTRY_KIND] in kinds)
            }
        return table

    def cached_record(self, seq: int) -> Optional[HandleRecord]:
        """The record built before for ``seq``, if it is still cached."""
        return self._built.get(seq)

    def cache_records(self, records: Collection[HandleRecord]) -> None:
        """Keep built records of live entries for the next query (dropped on release)."""
        built = self._built
        with self._lock:
            for record in records:
                if record.seq in self._live:
                    built[record.seq] = record
            if len(built) > 2 * len(self._live) + 64:
                for seq in [seq for seq in built.copy() if seq not in self._live]:
                    built.pop(seq, None)

    def last_seq(self) -> int:
        """The sequence number of the newest record (a cheap "created since" marker)."""
        # Taking a number is atomic (one C call) and the gap it leaves is harmless: sequence
        # numbers only need to grow. Every record made after this call has a larger number.
        return next(self._seq) - 1

    def totals(self) -> Totals:
        """Created per kind, released per cause and errors since the registry was made."""
        with self._lock:
            created = self._column(CREATED_COLUMN)
            by_cause = self._causes()
            live = self._column(LIVE_COLUMN)
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
            rows = self._rows()
            errors = self.instrumentation_errors
        by_cause = _cause_totals(rows)
        kinds = {
            kind: KindStats(
                kind=kind,
                created=c[CREATED_COLUMN],
                released=c[RELEASED_COLUMN],
                live=c[LIVE_COLUMN],
                peak=c[PEAK_COLUMN],
            )
            for kind, c in sorted(rows)
        }
        return Stats(
            kinds=kinds,
            released_by_cause=by_cause,
            instrumentation_errors=errors,
            created=sum(c[CREATED_COLUMN] for _, c in rows),
            released=sum(c[RELEASED_COLUMN] for _, c in rows),
            live=sum(c[LIVE_COLUMN] for _, c in rows),
        )


def source_of(entry: RecordFields) -> str:
    """``"handle"`` for a ``_Handle``'s entry, ``"future"`` for an async handle's."""
    if len(entry) == HANDLE_ENTRY_LEN:
        return "handle"
    return entry[FUTURE_SOURCE]  # type: ignore[no-any-return]


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
