"""The report model: the value types a report is made of, and :func:`make_report`, which
builds a :class:`Report` from a snapshot and its diagnosis (no I/O here).

The JSON form of a :class:`Report` is versioned: ``{"schema": "handletrace.report",
"version": 1, ...}``; README.md documents every field. It is written and read by
``codec.py`` from the fields below: a field's JSON key, its nesting (``summary``, ``age``),
whether it may be absent and whether it is left out while empty are said once, in the
field's metadata; ``to_dict()``/``from_dict()`` add the schema and version around it.

Diagnosis fields (optional in version 1: present only when a diagnosis ran, and a report
without them still loads). Per group:

``classification``
    ``{classification: count}`` for the group's handles, most urgent first
    (``cyclic-garbage``, ``orphaned``, ``stale``, ``reachable``, ``unknown``, ``released``).
``cycle``
    the reference cycle keeping the group's handles alive, as a path (below).
``root_path``
    for reachable handles: the shortest reference path from a root to the first one.
``subject``
    the class of the SDK object the ``signals`` and ``access`` below belong to.
``signals``
    ``[{"name", "declared_by", "created", "callbacks": [{"qualname", "filename", "lineno"}]}]``:
    every EventSignal the object's class declares, most derived class first.
``access``
    ``[{"action", "target", "filename", "lineno", "line", "thread", "callback", "by_sdk",
    "disconnected"}]``: calls of ``connect`` / ``disconnect_all`` / ``start_*`` / ``stop_*``
    on the object (``disconnected``: for a connect, whether a later ``disconnect_all`` of
    that signal was seen; ``null`` otherwise).
``findings``
    ``[{"pattern", "title", "message", "filename", "lineno", "fix", "count"}]``: known SDK
    leak patterns found (``count``: how many SDK objects or handles of the group match).

A path is ``{"kind": "cycle"|"root", "text", "root", "steps": [{"label", "type", "note",
"filename", "lineno"}], "held": [steps], "held_from"}`` (``text`` is derived from the rest).

At the top level: ``diagnosis`` ``{"classification": {...}, "findings", "duration",
"objects_scanned", "stale_after", "gc_collected"}`` and ``native`` ``{"native_total",
"tracked_total", "relative", "rows": [{"native_type", "kinds", "native", "tracked",
"sdk_internal"}]}`` (the SDK's own handle table beside the registry's live counts;
``sdk_internal``: what each untracked handle the SDK made for itself at import is).

``blocking`` (top level, present when the report was made with the blocking record)::

    {"threshold": <seconds>, "total": <seconds>, "worst": <seconds>,
     "event_loop": <seconds>,
     "in_flight": [{"seq", "kind", "owner", "elapsed", "cause",
                    "thread": {"name", "sdk_thread", "event_loop"},
                    "site": [frames], "created": [frames]}],
     "sites": [{"what", "name", "owner", "count", "total", "worst", "on_event_loop",
                "on_sdk_thread", "cause", "thread", "site": [frames], "created": [frames],
                "other"}],
     "findings": [findings, as in groups]}

Releases in flight when the report began (the handle is ``releasing``: still live), and the
releases and event-loop SDK calls that took at least ``threshold`` seconds, by site (``site``
and ``created``: up to six frames, most recent call last; ``cause``, ``thread``: those of the
site's most recent event; ``other``: ``true`` on the row counting sites past the record's
bound, absent on the others).
``total``, ``worst`` and ``event_loop`` (seconds event loops were held) are derived from the
sites and not read back.

A group's ``fingerprint`` hashes its creation site, its kinds and, when it has one, its
cycle's text: leaks with the same site and the same cycle shape share it across runs.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sysconfig
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .._analysis.blocking import blocking_findings
from .._analysis.diagnosis import Diagnosis, HandleDiagnosis, SignalInfo
from .._analysis.paths import RefPath
from .._analysis.states import CLASSIFICATIONS, DESCRIPTIONS, RELEASED
from .._core.blocking import Blocking, BlockingSite, InFlight
from .._core.compat import DATACLASS_SLOTS
from .._core.registry import HandleRecord
from .._core.snapshot import HandleGroup, Snapshot
from .._core.stacks import Frame, Traceback, is_machinery
from .._core.threads import ThreadInfo
from .._sdk.access import AccessRecord
from .._sdk.native import NativeCheck
from ..errors import ReportError
from . import codec

__all__ = [
    "REPORT_SCHEMA",
    "REPORT_VERSION",
    "Report",
    "ReportError",
    "ReportFrame",
    "ReportAccess",
    "ReportBlocking",
    "ReportBlockingSite",
    "ReportDiagnosis",
    "ReportFinding",
    "ReportGroup",
    "ReportHandle",
    "ReportInFlight",
    "ReportThread",
    "KindCount",
    "make_blocking",
    "make_report",
    "fingerprint_of",
]

REPORT_SCHEMA = "handletrace.report"
REPORT_VERSION = 1
HANDLES_PER_GROUP = 50  # handles listed individually per group in a report
#: Frames kept of a blocking release's or call's site and of its handle's creation stack.
BLOCKING_FRAMES = 6

# The JSON form of every type below follows its fields (see codec.py): a field's metadata
# says where its key differs from its name, what may be absent, and what is left out.
_SUMMARY = codec.meta(at="summary")


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportFrame:
    """A creation-stack frame as shown in a report, with its (redacted) source line."""

    filename: str
    lineno: int
    name: str
    line: str = ""

    @classmethod
    def of(cls, frame: Frame) -> ReportFrame:
        return cls(frame.filename, frame.lineno, frame.name, frame.source_line())

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}"


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportHandle:
    """One live handle as listed in a report."""

    seq: int
    kind: str
    address: str
    owner: str
    parent: Optional[str] = field(metadata=codec.meta(missing=None))
    thread: str
    age: float


class KindCount(NamedTuple):
    """How many of a group's handles are of one kind and owner."""

    kind: str
    owner: str
    count: int  # type: ignore[assignment]  # shadows tuple.count: the schema's key is "count"


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportFinding:
    """A known SDK leak pattern found in a group: what, where, the fix, and how often."""

    pattern: str
    title: str = field(metadata=codec.meta(missing=""))
    message: str
    filename: str = field(metadata=codec.meta(missing=""))
    lineno: int = field(metadata=codec.meta(missing=0))
    fix: str = field(metadata=codec.meta(missing=""))
    count: int = 1

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}" if self.filename else ""


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportAccess:
    """A call of connect / disconnect_all / start_* / stop_* on a group's SDK object."""

    action: str
    target: str
    filename: str = field(metadata=codec.meta(missing=""))
    lineno: int = field(metadata=codec.meta(missing=0))
    line: str = ""
    thread: str = ""
    callback: str = ""
    by_sdk: bool = False
    #: For a connect: whether a later disconnect_all of the same signal was seen.
    disconnected: Optional[bool] = None

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}" if self.filename else ""


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportDiagnosis:
    """How the diagnosis ran, and its totals."""

    #: (classification, count), most urgent first
    classification: Tuple[Tuple[str, int], ...] = field(metadata=codec.meta(pairs=True, missing=()))
    findings: int = field(metadata=codec.meta(missing=0))
    duration: float = field(metadata=codec.meta(missing=0.0))
    objects_scanned: int = field(metadata=codec.meta(missing=0))
    stale_after: Optional[float] = None
    gc_collected: bool = False


_SECONDS = codec.meta(digits=4)


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportThread:
    """The thread a blocking release or call ran on."""

    name: str
    #: One of the SDK's native callback threads (Python did not start it).
    sdk_thread: bool = False
    #: An asyncio event loop was running on it.
    event_loop: bool = False

    @classmethod
    def of(cls, thread: ThreadInfo) -> ReportThread:
        return cls(thread.name, thread.sdk_thread, thread.event_loop)

    def __str__(self) -> str:
        flags = (("event loop", self.event_loop), ("SDK callback thread", self.sdk_thread))
        what = [word for word, on in flags if on]
        return f"{self.name} ({', '.join(what)})" if what else self.name


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportInFlight:
    """A native release that had started and not returned when the report began."""

    seq: int
    kind: str
    owner: str
    #: Seconds it had been releasing.
    elapsed: float = field(metadata=_SECONDS)
    #: ``del``, ``gc``, ``forced`` (``dispose()``) or ``direct``.
    cause: str
    thread: ReportThread
    #: Where the release is being made, most recent call last (the last frame: the line
    #: that dropped the last reference or called ``dispose()``).
    site: Tuple[ReportFrame, ...]
    #: Where the handle was created, most recent call last.
    created: Tuple[ReportFrame, ...]


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportBlockingSite:
    """Every recorded slow release or blocking call made from one line."""

    #: ``release`` or ``call``.
    what: str
    #: The handle kind released (``recognizer``) or the call
    #: (``SpeechRecognizer.stop_continuous_recognition()``).
    name: str
    #: The class of the SDK object released or called.
    owner: str
    count: int
    total: float = field(metadata=_SECONDS)
    worst: float = field(metadata=_SECONDS)
    #: How many ran on an event loop's thread, and on an SDK callback thread.
    on_event_loop: int
    on_sdk_thread: int
    #: The most recent one's cause (``del``, ``gc``, ``forced``, ``direct``; ``call``) and
    #: thread.
    cause: str
    thread: ReportThread
    #: Its site and its handle's creation stack, most recent call last.
    site: Tuple[ReportFrame, ...]
    created: Tuple[ReportFrame, ...]
    #: The row counting the sites past the record's bound (no site of its own).
    other: bool = field(default=False, metadata=codec.meta(omit=True))

    @property
    def where(self) -> str:
        return str(self.site[-1]) if self.site else ""

    @property
    def event_loop_seconds(self) -> float:
        """The seconds its events held event loops (a site whose events ran partly on a
        loop counts its share)."""
        return self.total * self.on_event_loop / self.count if self.count else 0.0


@dataclass(frozen=True)
class ReportBlocking:
    """What blocked: releases in flight when the report began, and the slow releases and
    blocking SDK calls recorded (at least ``threshold`` seconds), by site, with the known
    patterns they match."""

    threshold: float
    #: The longest first.
    in_flight: Tuple[ReportInFlight, ...] = ()
    #: The longest total first (the "other sites" row last).
    sites: Tuple[ReportBlockingSite, ...] = ()
    findings: Tuple[ReportFinding, ...] = ()

    @property
    def clean(self) -> bool:
        return not (self.in_flight or self.sites)

    @property
    def total(self) -> float:
        """Seconds of every recorded release and call."""
        return sum((site.total for site in self.sites), 0.0)

    @property
    def worst(self) -> float:
        """The longest recorded release or call, or release in flight so far."""
        return max(
            [0.0, *(site.worst for site in self.sites), *(f.elapsed for f in self.in_flight)]
        )

    @property
    def event_loop(self) -> float:
        """Seconds event loops were held by recorded releases and calls."""
        return sum((site.event_loop_seconds for site in self.sites), 0.0)


@dataclass(frozen=True, **DATACLASS_SLOTS)
class GroupSummary:
    """A one-glance view of a group's diagnosis (derived from its fields, not serialised)."""

    classification: str
    summary: str
    cycle: Optional[RefPath]
    fix: str


_OPTIONAL = codec.meta(omit=True)  # a diagnosis field: in the JSON only when set


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportGroup:
    """Live handles from one creation site (and, with a diagnosis, one cycle shape)."""

    fingerprint: str
    site: Optional[ReportFrame] = field(metadata=codec.meta(missing=None))
    count: int
    kinds: Tuple[KindCount, ...]
    age_min: float = field(metadata=codec.meta(at="age", key="min"))
    age_max: float = field(metadata=codec.meta(at="age", key="max"))
    traceback: Tuple[ReportFrame, ...]  # oldest first: most recent call last
    handles: Tuple[ReportHandle, ...]
    # -- diagnosis (empty when none ran) ------------------------------------------------
    #: (classification, count)
    classification: Tuple[Tuple[str, int], ...] = field(
        default=(), metadata=codec.meta(pairs=True, omit=True)
    )
    cycle: Optional[RefPath] = field(default=None, metadata=_OPTIONAL)
    root_path: Optional[RefPath] = field(default=None, metadata=_OPTIONAL)
    subject: str = field(default="", metadata=_OPTIONAL)
    #: For objects the SDK made on its callback thread (no application line): the signal
    #: and callbacks they were delivered to (``Delivery.text``); "" otherwise.
    delivered: str = field(default="", metadata=_OPTIONAL)
    signals: Tuple[SignalInfo, ...] = field(default=(), metadata=_OPTIONAL)
    access: Tuple[ReportAccess, ...] = field(default=(), metadata=_OPTIONAL)
    findings: Tuple[ReportFinding, ...] = field(default=(), metadata=_OPTIONAL)

    @property
    def diagnosis(self) -> Optional[GroupSummary]:
        """The group's diagnosis at a glance, or ``None`` if none ran."""
        if not self.classification:
            return None
        label = ", ".join(f"{n} {state}" for state, n in self.classification)
        first = self.findings[0] if self.findings else None
        if first is not None:
            summary = f"{first.title}: {first.message}"
        else:
            summary = DESCRIPTIONS.get(self.classification[0][0], "")
        return GroupSummary(label, summary, self.cycle, first.fix if first is not None else "")


@dataclass(frozen=True)
class Report:
    """Everything a rendered report shows."""

    generated_at: float
    pid: int
    python: str
    sdk_version: str
    installed: bool
    live: int = field(metadata=_SUMMARY)
    created: int = field(default=0, metadata=_SUMMARY)
    released: int = field(default=0, metadata=_SUMMARY)
    released_by_cause: Mapping[str, int] = field(default_factory=dict, metadata=_SUMMARY)
    instrumentation_errors: int = field(default=0, metadata=_SUMMARY)
    kinds: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: Largest first.
    groups: Tuple[ReportGroup, ...] = field(default=(), metadata=codec.meta(required=True))
    notes: Tuple[str, ...] = ()
    #: How the diagnosis ran and its totals (``None``: no diagnosis).
    diagnosis: Optional[ReportDiagnosis] = field(default=None, metadata=_OPTIONAL)
    #: The SDK's native handle table beside the registry (``None``: not read).
    native: Optional[NativeCheck] = field(default=None, metadata=_OPTIONAL)
    #: Releases in flight, slow releases and blocking calls (``None``: not recorded).
    blocking: Optional[ReportBlocking] = field(default=None, metadata=_OPTIONAL)

    @property
    def clean(self) -> bool:
        return self.live == 0

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """The JSON form: schema ``handletrace.report``, version 1 (README.md)."""
        data: Dict[str, Any] = {"schema": REPORT_SCHEMA, "version": REPORT_VERSION}
        data.update(_CODEC.encode(self))
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "report") -> Report:
        """Rebuild a report from its JSON form; raises :class:`ReportError` if malformed."""
        if not isinstance(data, dict):
            raise ReportError(f"{source}: the top level should be dict, got {type(data).__name__}")
        if data.get("schema") != REPORT_SCHEMA:
            raise ReportError(
                f"{source}: not a handletrace report (schema is {data.get('schema')!r})"
            )
        version = data.get("version")
        if version != REPORT_VERSION:
            raise ReportError(
                f"{source}: report version {version!r} is not supported (this handletrace "
                f"reads version {REPORT_VERSION})"
            )
        try:
            report: Report = _CODEC.decode(cls, data)
        except codec.CodecError as exc:
            raise ReportError(_problem(exc, source)) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReportError(f"{source}: not a valid handletrace report ({exc!r})") from None
        return report


#: Values the JSON carries beside the fields (derived from them; not read back).
_CODEC = codec.Codec(
    derived={
        Report: {"summary.groups": lambda report: len(report.groups)},
        RefPath: {"text": lambda path: path.text},
        ReportBlocking: {
            "total": lambda blocking: round(blocking.total, 4),
            "worst": lambda blocking: round(blocking.worst, 4),
            "event_loop": lambda blocking: round(blocking.event_loop, 4),
        },
        NativeCheck: {"per_object": lambda check: [_per_object(p) for p in check.per_object()]},
    }
)


def _per_object(per: Any) -> Dict[str, Any]:
    return {
        "kind": per.kind,
        "live": per.live,
        "threads": None if per.threads is None else round(per.threads, 2),
        "sockets": None if per.sockets is None else round(per.sockets, 2),
    }


def _problem(error: codec.CodecError, source: str) -> str:
    """What a CodecError means for a saved report, naming where."""
    if error.missing is not None:
        where = f" in {error.where}" if error.path else ""
        return f"{source}: not a valid handletrace report (KeyError({error.missing!r})){where}"
    return f"{source}: {error.where} {error.problem}"


def fingerprint_of(group: HandleGroup, shape: str = "") -> str:
    """A stable id for a creation site, what it creates and (``shape``) the cycle holding it.

    Same across runs and machines: users can put it in an allow-list. Without a shape it is
    the same id as before diagnoses existed.
    """
    filename, lineno, name = group.site
    kinds = sorted({f"{kind}/{owner}" for kind, owner in group.kind_counts()})
    text = f"{os.path.basename(filename)}:{lineno}:{name}|{','.join(kinds)}"
    if shape:
        text += f"|{shape}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _split_by_shape(group: HandleGroup, diagnosis: Diagnosis) -> List[Tuple[HandleGroup, str]]:
    """The group split by cycle shape (first-seen order); one part if all share one."""
    parts: Dict[str, List[Any]] = {}
    for record in group.records:
        handle = diagnosis.get(record.seq)
        parts.setdefault(handle.shape if handle is not None else "", []).append(record)
    return [(HandleGroup(group.site, tuple(records)), shape) for shape, records in parts.items()]


def _access_rows(access: Sequence[AccessRecord]) -> Tuple[ReportAccess, ...]:
    rows = []
    for index, entry in enumerate(access):
        disconnected: Optional[bool] = None
        if entry.action == "connect":
            disconnected = any(
                later.action == "disconnect_all" and later.target == entry.target
                for later in access[index + 1 :]
            )
        site = entry.site
        rows.append(
            ReportAccess(
                action=entry.action,
                target=entry.target,
                filename=site.filename if site is not None else "",
                lineno=site.lineno if site is not None else 0,
                line=site.source_line() if site is not None else "",
                thread=entry.thread_name,
                callback=entry.callback.qualname if entry.callback is not None else "",
                by_sdk=entry.by_sdk,
                disconnected=disconnected,
            )
        )
    return tuple(rows)


def _diagnosis_fields(group: HandleGroup, diagnosis: Diagnosis) -> Dict[str, Any]:
    """The ReportGroup diagnosis fields for ``group``."""
    pairs = [(r, diagnosis.get(r.seq)) for r in group.records]
    known = [(record, handle) for record, handle in pairs if handle is not None]
    handles: List[HandleDiagnosis] = [handle for _, handle in known]
    if not handles:
        return {}
    counts: Dict[str, int] = {}
    for handle in handles:
        counts[handle.state] = counts.get(handle.state, 0) + 1
    order = {state: i for i, state in enumerate(CLASSIFICATIONS)}
    classification = tuple(sorted(counts.items(), key=lambda item: order.get(item[0], 99)))
    first = handles[0]
    # A finding counts once per SDK object (records of one object share its findings).
    finding_counts: Dict[Any, set] = {}
    for record, handle in known:
        for finding in handle.findings:
            own = record.source == "handle" and handle.subject_key
            key = handle.subject_key if own else -record.seq
            finding_counts.setdefault(finding, set()).add(key)
    findings = tuple(
        ReportFinding(
            f.pattern, f.title, f.message, f.filename, f.lineno, f.fix, len(finding_counts[f])
        )
        for f in finding_counts
    )
    return {
        "classification": classification,
        "cycle": next((h.cycle for h in handles if h.cycle is not None), None),
        "root_path": next((h.path for h in handles if h.path is not None), None),
        "subject": first.subject,
        "delivered": next((h.delivery.text for h in handles if h.delivery is not None), ""),
        # A future's object has its own group: its signals are shown there.
        "signals": first.signals if group.records[0].source == "handle" else (),
        "access": _access_rows(first.access),
        "findings": findings,
    }


def _stdlib_files(*names: str) -> Tuple[str, ...]:
    stdlib = sysconfig.get_paths()["stdlib"]
    return tuple(os.path.join(stdlib, name) for name in names)


#: Frames of the machinery that ran a blocking release or call, left out of its site: the
#: event loop's and the thread's own (the thread's description says which it was), runpy's
#: and handletrace's (``handletrace run``), but for the local speech service's.
_MACHINERY = _stdlib_files(
    f"asyncio{os.sep}", "threading.py", f"concurrent{os.sep}", "selectors.py", "runpy.py"
)


def _machinery(filename: str) -> bool:
    if filename.startswith(_MACHINERY) or filename.startswith("<frozen "):  # runpy in 3.11+
        return True
    # handletrace's own modules by what they are (the installed demo's example service and
    # the local speech service ship in the package but are user code).
    return is_machinery(filename)


#: A string literal in a source line.
_LITERAL = re.compile(r"""("[^"\n]*"|'[^'\n]*')""")


def _frames(traceback: Traceback, *, site: bool = False) -> Tuple[ReportFrame, ...]:
    """Up to ``BLOCKING_FRAMES`` frames of a stack, most recent call last, without the event
    loop's and the thread's machinery. ``site``: the stack of a release or a call, whose
    lines show every string literal masked (besides the usual masking of keys and configs):
    the line that drops the last reference is often one that drops a dictionary entry,
    ``SESSIONS["<key>"] = ...``, and the dictionary may be keyed by a secret."""
    frames = [f for f in traceback if not _machinery(f.filename)] or list(traceback)
    shown = [ReportFrame.of(f) for f in frames[-BLOCKING_FRAMES:]]
    if site:
        shown = [replace(f, line=_LITERAL.sub("'***'", f.line)) for f in shown]
    return tuple(shown)


def _in_flight_row(flight: InFlight, record: Optional[HandleRecord]) -> ReportInFlight:
    return ReportInFlight(
        seq=flight.seq,
        kind=record.kind if record is not None else "",
        owner=record.owner_label if record is not None else "",
        elapsed=round(flight.elapsed, 4),
        cause=flight.cause,
        thread=ReportThread.of(flight.thread),
        site=_frames(flight.site, site=True),
        created=_frames(record.traceback) if record is not None else (),
    )


def _site_row(site: BlockingSite) -> ReportBlockingSite:
    last = site.last
    return ReportBlockingSite(
        what=site.what,
        name=site.name,
        owner=site.owner,
        count=site.count,
        total=round(site.total, 4),
        worst=round(site.worst, 4),
        on_event_loop=site.on_event_loop,
        on_sdk_thread=site.on_sdk_thread,
        cause=last.cause,
        thread=ReportThread.of(last.thread),
        site=() if site.other else _frames(last.site, site=True),
        created=() if site.other else _frames(last.created),
        other=site.other,
    )


def make_blocking(
    blocking: Blocking, records: Sequence[HandleRecord] = ()
) -> ReportBlocking:
    """The report's blocking section for ``blocking`` (what :func:`handletrace.blocking`
    returns, or the part of it a test made); ``records``: the live records, whose kind,
    owner and creation stack describe the releases in flight."""
    by_seq = {record.seq: record for record in records}
    in_flight = [(flight, by_seq.get(flight.seq)) for flight in blocking.in_flight]
    findings = blocking_findings(
        blocking.sites, [(flight, record) for flight, record in in_flight if record is not None]
    )
    return ReportBlocking(
        threshold=float(blocking.threshold),
        in_flight=tuple(_in_flight_row(flight, record) for flight, record in in_flight),
        sites=tuple(_site_row(site) for site in blocking.sites),
        findings=tuple(
            ReportFinding(f.pattern, f.title, f.message, f.filename, f.lineno, f.fix, count)
            for f, count in findings
        ),
    )


def make_report(
    snapshot: Snapshot,
    *,
    installed: bool,
    sdk_version: str,
    diagnosis: Optional[Diagnosis] = None,
    blocking: Optional[Blocking] = None,
) -> Report:
    """The report data for ``snapshot``: groups by creation site, largest first.

    With a ``diagnosis`` (see :func:`handletrace.diagnose`), a site's handles are further
    split by the cycle that holds them, and each group carries its diagnosis. With
    ``blocking`` (its releases in flight should be the snapshot's), the report has its
    blocking section.
    """
    groups = []
    now = snapshot.taken_monotonic
    parts: List[Tuple[HandleGroup, str]] = []
    for site_group in snapshot.groups():
        if diagnosis is None:
            parts.append((site_group, ""))
        else:
            parts.extend(_split_by_shape(site_group, diagnosis))
    parts.sort(key=lambda part: (-part[0].count, part[0].records[0].seq))
    for group, shape in parts:
        ages = [record.age(now) for record in group.records]
        origin = group.origin
        extra = _diagnosis_fields(group, diagnosis) if diagnosis is not None else {}
        groups.append(
            ReportGroup(
                fingerprint=fingerprint_of(group, shape),
                site=ReportFrame.of(origin) if origin is not None else None,
                count=group.count,
                kinds=tuple(KindCount(k, o, n) for (k, o), n in group.kind_counts().items()),
                age_min=round(min(ages), 3),
                age_max=round(max(ages), 3),
                traceback=tuple(ReportFrame.of(f) for f in group.traceback),
                handles=tuple(
                    ReportHandle(
                        seq=r.seq,
                        kind=r.kind,
                        address=r.address_hex,
                        owner=r.owner,
                        parent=r.parent,
                        thread=r.thread_name,
                        age=round(r.age(now), 3),
                    )
                    for r in group.records[:HANDLES_PER_GROUP]
                ),
                **extra,
            )
        )
    stats = snapshot.stats
    summary = None
    notes: Tuple[str, ...] = ()
    released = 0
    if diagnosis is not None:
        released = diagnosis.counts().get(RELEASED, 0)
        if released:
            notes = (
                f"{released} of the {len(snapshot)} handles on record when this report began "
                "were released while it was built (SDK callbacks still running): shown as "
                "released, not counted as live",
            )
        totals = diagnosis.counts()
        summary = ReportDiagnosis(
            classification=tuple((s, totals[s]) for s in CLASSIFICATIONS if s in totals),
            findings=sum(len(g.findings) for g in groups),
            duration=round(diagnosis.duration, 3),
            objects_scanned=diagnosis.objects_scanned,
            # A float, as read back: stale_after=3600 is written 3600.0 both times.
            stale_after=None if diagnosis.stale_after is None else float(diagnosis.stale_after),
            gc_collected=diagnosis.gc_collected,
        )
    return Report(
        generated_at=snapshot.taken_at,
        pid=os.getpid(),
        python=platform.python_version(),
        sdk_version=sdk_version,
        installed=installed,
        live=len(snapshot) - released,
        groups=tuple(groups),
        notes=notes,
        created=stats.created if stats else 0,
        released=stats.released if stats else 0,
        released_by_cause=dict(stats.released_by_cause) if stats else {},
        kinds={
            k: {"created": s.created, "released": s.released, "live": s.live, "peak": s.peak}
            for k, s in (stats.kinds.items() if stats else ())
        },
        instrumentation_errors=stats.instrumentation_errors if stats else 0,
        diagnosis=summary,
        native=diagnosis.native if diagnosis is not None else None,
        blocking=make_blocking(blocking, snapshot.records) if blocking is not None else None,
    )
