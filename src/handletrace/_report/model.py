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

A group's ``fingerprint`` hashes its creation site, its kinds and, when it has one, its
cycle's text: leaks with the same site and the same cycle shape share it across runs.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .._analysis.diagnosis import Diagnosis, HandleDiagnosis, SignalInfo
from .._analysis.paths import RefPath
from .._analysis.states import CLASSIFICATIONS, DESCRIPTIONS, RELEASED
from .._core.compat import DATACLASS_SLOTS
from .._core.snapshot import HandleGroup, Snapshot
from .._core.stacks import Frame
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
    "ReportDiagnosis",
    "ReportFinding",
    "ReportGroup",
    "ReportHandle",
    "KindCount",
    "make_report",
    "fingerprint_of",
]

REPORT_SCHEMA = "handletrace.report"
REPORT_VERSION = 1
HANDLES_PER_GROUP = 50  # handles listed individually per group in a report

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
    }
)


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


def make_report(
    snapshot: Snapshot,
    *,
    installed: bool,
    sdk_version: str,
    diagnosis: Optional[Diagnosis] = None,
) -> Report:
    """The report data for ``snapshot``: groups by creation site, largest first.

    With a ``diagnosis`` (see :func:`handletrace.diagnose`), a site's handles are further
    split by the cycle that holds them, and each group carries its diagnosis.
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
    )
