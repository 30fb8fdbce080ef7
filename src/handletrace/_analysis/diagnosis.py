"""Why each live handle is alive: classification, the cycle drawn, signals, access records,
known SDK leak patterns and the native handle-table cross-check; for the events and results
the SDK made on its callback threads (no application line in their stack), the signal and
the callbacks they were delivered to.

:func:`diagnose` returns plain data (:class:`Diagnosis`); the report merges it into its
groups. The analysis reads the heap once (see :class:`~handletrace._cycles.HeapGraph`): it
runs no garbage collection, changes no object and keeps none alive once it returns.

Classifications, most urgent first:

``cyclic-garbage``
    unreachable: only a cyclic garbage collection would release it (the seed's leak).
``orphaned``
    its Python object is gone but the native handle was never released (e.g. the async
    handle of a ``ResultFuture`` dropped without ``get()``).
``stale``
    reachable, and older than the ``stale_after`` threshold.
``reachable``
    still referenced from a root (a module global, a thread's frame...): in use, or held too long.
``unknown``
    not seen by the heap scan (created while it ran, or frozen with ``gc.freeze()``).
``released``
    released after the snapshot was taken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .._core.compat import DATACLASS_SLOTS
from .._core.registry import HandleRecord
from .._core.snapshot import Snapshot
from .._core.state import TRACKER
from .._sdk.access import AccessRecord, access_records
from .._sdk.modules import event_signal_type
from .._sdk.native import NativeCheck, cross_check, read_native_counts
from .._sdk.owners import scan_sees_all
from .._sdk.signals import CallbackInfo, callbacks_of, describe_callable, hostile
from . import patterns
from .delivery import Delivery, find_deliveries, made_on_sdk_thread
from .heap import HeapGraph
from .paths import RefPath
from .patterns import Finding, Subject, declared_signals
from .states import (
    CLASSIFICATIONS,
    CYCLIC_GARBAGE,
    ORPHANED,
    REACHABLE,
    RELEASED,
    RELEASING,
    STALE,
    UNKNOWN,
    Classification,
)

__all__ = [
    "Delivery",
    "Diagnosis",
    "HandleDiagnosis",
    "Leak",
    "SignalInfo",
    "diagnose",
    "signals_tree",
    "record_subject",
]


@dataclass(frozen=True, **DATACLASS_SLOTS)
class SignalInfo:
    """One EventSignal an SDK object has: where it is declared, and what is connected to it."""

    name: str
    declared_by: str
    created: bool
    callbacks: Tuple[CallbackInfo, ...] = ()

    @property
    def connected(self) -> bool:
        return bool(self.callbacks)


def _count_error(where: str, exc: BaseException) -> None:
    TRACKER.registry.count_error(where, exc)


def signals_tree(obj: Any) -> Tuple[SignalInfo, ...]:
    """Every signal ``obj``'s class declares (found from the SDK classes, not a fixed list),
    most derived class first, with the callables connected to each.

    Never raises what the object raises (a KeyboardInterrupt excepted): the object is read
    past any ``__getattribute__`` override, and a signal or callback that cannot be read is
    shown as far as it can be (each failure is counted in
    ``handletrace.stats().instrumentation_errors``).
    """
    try:
        return _signals_tree(obj)
    except BaseException as exc:  # even a BaseException of the object's own
        if not hostile(exc):
            raise
        _count_error("signals tree", exc)
        return ()


def _signals_tree(obj: Any) -> Tuple[SignalInfo, ...]:
    cls = type(obj)
    try:
        names = declared_signals(cls)
        mro = type.__getattribute__(cls, "__mro__")  # past a metaclass's __getattribute__
        order = {type.__getattribute__(k, "__name__"): i for i, k in enumerate(mro)}
    except Exception as exc:
        _count_error("signals tree", exc)
        return ()
    if not names:
        return ()
    try:
        namespace = dict(object.__getattribute__(obj, "__dict__"))
    except Exception:
        namespace = {}  # no instance dictionary (or a hostile one): no signal was created
    entries = []
    for position, (attribute, name) in enumerate(names.items()):
        declared_by = attribute[1:].split("__", 1)[0]
        signal = namespace.get(attribute)
        callbacks: Tuple[CallbackInfo, ...] = ()
        if signal is not None:
            try:
                callbacks = tuple(describe_callable(cb) for cb in callbacks_of(signal))
            except Exception as exc:
                _count_error("signals tree", exc)
        entries.append(
            (
                order.get(declared_by, len(order)),
                position,
                SignalInfo(name, declared_by, signal is not None, callbacks),
            )
        )
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return tuple(entry[2] for entry in entries)


def record_subject(record: HandleRecord) -> Any:
    """The SDK object a record is about (``None`` if it is gone): for a ``_Handle``, the
    object that owns the handle's owner as the SDK made it (a transcriber for its property
    bag), else the owner itself; for a ``ResultFuture``'s handle, the object that started it.

    A record's parent holds its owner in one of the SDK's attributes (``_sdk/owners.py``
    applies that rule): an application object that merely *is* an SDK object by
    inheritance (a ``PullAudioInputStreamCallback`` subclass keeping its recognizer in
    ``self.recognizer``) is not the recognizer's parent.
    """
    parent = record.parent_ref()
    if record.source != "handle":
        return parent
    owner = record.owner_ref()
    if owner is None:
        return parent
    return owner if parent is None else parent


@dataclass(frozen=True, **DATACLASS_SLOTS)
class HandleDiagnosis:
    """Why one live handle is alive.

    ``subject`` is the class of the SDK object it belongs to (its owner, or the object that
    owns the owner: a transcriber's property bag belongs to the transcriber); ``signals`` and
    ``access`` are that object's. ``cycle`` is the reference cycle keeping a cyclic-garbage
    handle alive; ``path`` the shortest reference path from a root to a reachable one.
    """

    seq: int
    state: Classification
    subject: str = ""
    #: The same number for the handles of one SDK object within a diagnosis (0: none).
    subject_key: int = 0
    cycle: Optional[RefPath] = None
    path: Optional[RefPath] = None
    signals: Tuple[SignalInfo, ...] = ()
    access: Tuple[AccessRecord, ...] = ()
    findings: Tuple[Finding, ...] = ()
    #: For an object the SDK made on its callback thread (an event, a result): the signal
    #: and the application callbacks it was delivered to (its stack has no application line).
    delivery: Optional[Delivery] = None
    #: The record's source: ``"handle"`` or ``"future"`` (see ``HandleRecord.source``).
    source: str = "handle"

    @property
    def leak_key(self) -> int:
        """The leaked thing this handle's findings are about, the same number for all the
        handles of one within a diagnosis: its SDK object (``subject_key``) for a
        ``_Handle``, the ``ResultFuture`` itself (``-seq``) for a future's async handle."""
        return self.subject_key if self.source == "handle" and self.subject_key else -self.seq

    @property
    def shape(self) -> str:
        """The cycle's text ('' if none): same creation site + same shape = one leak."""
        return self.cycle.text if self.cycle is not None else ""


@dataclass(frozen=True)
class Diagnosis:
    """The diagnosis of a snapshot's records (keyed by record ``seq``)."""

    handles: Mapping[int, HandleDiagnosis] = field(default_factory=dict)
    native: Optional[NativeCheck] = None
    stale_after: Optional[float] = None
    duration: float = 0.0
    objects_scanned: int = 0
    #: Always False: diagnose() never collects (a report built with collect=True says so itself).
    gc_collected: bool = False

    def get(self, seq: int) -> Optional[HandleDiagnosis]:
        return self.handles.get(seq)

    def counts(self) -> Dict[str, int]:
        """How many handles have each classification (classifications with none left out)."""
        counts = dict.fromkeys(CLASSIFICATIONS, 0)
        for handle in self.handles.values():
            counts[handle.state] = counts.get(handle.state, 0) + 1
        return {state: n for state, n in counts.items() if n}

    def findings(self) -> Tuple[Finding, ...]:
        """Every distinct finding, in first-seen order."""
        seen: Dict[Finding, None] = {}
        for handle in self.handles.values():
            for finding in handle.findings:
                seen.setdefault(finding, None)
        return tuple(seen)

    def leaks(self) -> Tuple[Leak, ...]:
        """One :class:`Leak` per leaked thing and pattern: an SDK object (all its handles
        together: a transcriber and its property bag are one) or a dropped ``ResultFuture``,
        as the report's finding counts count them. In first-seen order."""
        found: Dict[Tuple[str, int], List[int]] = {}
        for seq, handle in self.handles.items():
            key = handle.leak_key
            for pattern in dict.fromkeys(finding.pattern for finding in handle.findings):
                found.setdefault((pattern, key), []).append(seq)
        return tuple(Leak(pattern, tuple(seqs)) for (pattern, _), seqs in found.items())


@dataclass(frozen=True, **DATACLASS_SLOTS)
class Leak:
    """One leaked SDK object (or dropped ``ResultFuture``) matched to a known pattern, with
    the sequence numbers of its handles in the diagnosis."""

    pattern: str
    seqs: Tuple[int, ...]


def _native_check() -> Optional[NativeCheck]:
    """The SDK's handle counts beside the registry's live counts (the whole process, now)."""
    registry = TRACKER.registry
    try:
        counts = read_native_counts()
        if counts is None:
            return None
        tracked = {kind: s.live for kind, s in registry.stats().kinds.items() if s.live}
        return cross_check(tracked, counts)
    except Exception as exc:
        registry.count_error("native handle counts", exc)
        return None


def diagnose(
    snapshot: Snapshot,
    *,
    stale_after: Optional[float] = None,
    native: bool = True,
    paths: bool = True,
) -> Diagnosis:
    """Classify every record of ``snapshot`` and explain it.

    ``stale_after``: seconds after which a still-referenced handle is ``stale``;
    ``native``: add the SDK's native handle counts; ``paths``: find the reference path from
    a root for reachable handles (one more walk over the heap).
    """
    started = time.perf_counter()
    check = _native_check() if native else None
    if not snapshot.records:
        return Diagnosis({}, check, stale_after, time.perf_counter() - started, 0)
    graph = HeapGraph.scan()
    try:
        handles = _Analysis(graph, snapshot, stale_after, paths).run()
        scanned = graph.size
    finally:
        graph.close()
    result = Diagnosis(handles, check, stale_after, time.perf_counter() - started, scanned)
    for listener in list(TRACKER.on_diagnosis):
        listener(result)  # metrics: each handle once per pattern; never raises
    return result


class _Analysis:
    """One diagnosis run. Holds real objects only while :meth:`run` runs."""

    def __init__(
        self, graph: HeapGraph, snapshot: Snapshot, stale_after: Optional[float], paths: bool
    ) -> None:
        self.graph = graph
        self.snapshot = snapshot
        self.stale_after = stale_after
        self.paths = paths
        self.registry = TRACKER.registry

    def _error(self, where: str, exc: BaseException) -> None:
        self.registry.count_error(where, exc)

    def run(self) -> Dict[int, HandleDiagnosis]:
        objects: Dict[int, Any] = {}  # id -> SDK object (subject), alive during the run only
        try:
            return self._run(objects)
        finally:
            objects.clear()

    def _run(self, objects: Dict[int, Any]) -> Dict[int, HandleDiagnosis]:
        graph = self.graph
        live = self.registry.live_seqs()
        now = self.snapshot.taken_monotonic
        states: Dict[int, Classification] = {}
        subject_of: Dict[int, Optional[int]] = {}  # seq -> id(subject)
        anchor_of: Dict[int, int] = {}  # seq -> id(object whose cycle / path explains it)
        first_record: Dict[int, HandleRecord] = {}  # id(subject) -> its first handle record
        anchors: Dict[int, Any] = {}
        for record in self.snapshot.records:
            subject = record_subject(record)
            holder = record.handle_ref() if record.source == "handle" else record.owner_ref()
            if subject is not None:
                objects[id(subject)] = subject
                subject_of[record.seq] = id(subject)
                known = first_record.get(id(subject))
                if known is None or (record.source == "handle" and known.source != "handle"):
                    first_record[id(subject)] = record
            else:
                subject_of[record.seq] = None
            if record.seq not in live:
                state = RELEASED
            elif record.seq in self.snapshot.releasing:
                state = RELEASING  # its native release is running (and may be blocking)
            elif holder is None:
                # A _Handle is found by a scan that does not see frozen objects.
                frozen = record.source == "handle" and not scan_sees_all()
                state = UNKNOWN if frozen else ORPHANED
            elif not graph.contains(holder):
                state = UNKNOWN
            elif graph.is_garbage(holder):
                state = CYCLIC_GARBAGE
            elif self.stale_after is not None and record.age(now) >= self.stale_after:
                state = STALE
            else:
                state = REACHABLE
            states[record.seq] = state
            if state in (CYCLIC_GARBAGE, STALE, REACHABLE):
                anchor = subject if subject is not None and graph.contains(subject) else holder
                if state == CYCLIC_GARBAGE and not graph.is_garbage(anchor):
                    anchor = holder
                anchors[id(anchor)] = anchor
                anchor_of[record.seq] = id(anchor)
            del subject, holder
        cycles: Dict[int, Optional[RefPath]] = {}
        reachable_anchors = []
        for key, anchor in anchors.items():
            if graph.is_garbage(anchor):
                try:
                    cycles[key] = graph.cycle_of(anchor)
                except Exception as exc:
                    self._error("cycle search", exc)
                    cycles[key] = None
            else:
                reachable_anchors.append(anchor)
        root_paths: Dict[int, RefPath] = {}
        if self.paths and reachable_anchors:
            try:
                root_paths = graph.paths_to(reachable_anchors)
            except Exception as exc:
                self._error("reference path search", exc)
        del reachable_anchors
        anchors.clear()
        deliveries = self._deliveries(objects, first_record)
        numbers = {key: index for index, key in enumerate(objects, 1)}
        per_subject: Dict[int, Tuple[str, Tuple[SignalInfo, ...], Tuple[AccessRecord, ...]]] = {}
        subject_findings: Dict[int, Tuple[Finding, ...]] = {}
        for key, obj in objects.items():
            try:
                signals = signals_tree(obj)
            except Exception as exc:
                self._error("signals tree", exc)
                signals = ()
            access = access_records(obj)  # never raises
            per_subject[key] = (type(obj).__qualname__, signals, access)
            record = first_record[key]
            anchor_key = anchor_of.get(record.seq)
            subject = Subject(
                obj=obj,
                record=record,
                state=states[record.seq],
                cycle=cycles.get(anchor_key) if anchor_key is not None else None,
                access=access,
            )
            subject_findings[key] = patterns.detect(subject, "object", self._error)
            del subject
        result: Dict[int, HandleDiagnosis] = {}
        for record in self.snapshot.records:
            seq = record.seq
            state = states[seq]
            subject_id = subject_of[seq]
            name, signals, access = (
                per_subject.get(subject_id, ("", (), ()))
                if subject_id is not None
                else ("", (), ())
            )
            parent = objects.get(subject_id) if subject_id is not None else None
            anchor_key = anchor_of.get(seq)
            record_findings = patterns.detect(
                Subject(obj=parent, record=record, state=state, access=access),
                "handle",
                self._error,
            )
            del parent
            findings = record_findings
            if record.source == "handle" and subject_id is not None:
                findings = subject_findings.get(subject_id, ()) + record_findings
            result[seq] = HandleDiagnosis(
                seq=seq,
                state=state,
                subject=name or record.owner,
                subject_key=numbers.get(subject_id, 0) if subject_id is not None else 0,
                cycle=cycles.get(anchor_key)
                if state == CYCLIC_GARBAGE and anchor_key is not None
                else None,
                path=root_paths.get(anchor_key) if anchor_key is not None else None,
                signals=signals,
                access=access,
                findings=findings,
                delivery=deliveries.get(subject_id) if subject_id is not None else None,
                source=record.source,
            )
        return result

    def _deliveries(
        self, objects: Dict[int, Any], first_record: Dict[int, HandleRecord]
    ) -> Dict[int, Delivery]:
        """Deliveries of the subjects the SDK made on its callback threads (one more pass
        over the scanned objects, for their EventSignals, only if there are any)."""
        made = {key: obj for key, obj in objects.items() if made_on_sdk_thread(first_record[key])}
        signal_type = event_signal_type()
        if not made or signal_type is None:
            return {}
        try:
            return find_deliveries(made, self.graph.instances(signal_type))
        except Exception as exc:
            self._error("delivery", exc)
            return {}
        finally:
            made.clear()
