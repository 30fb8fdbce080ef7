"""Report building: turns a snapshot into plain, serialisable data (no I/O here).

The JSON form of a :class:`Report` is versioned: ``{"schema": "handletrace.report",
"version": 1, ...}``; README.md documents every field.

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
"tracked_total", "relative", "rows": [{"native_type", "kinds", "native", "tracked"}]}``
(the SDK's own handle table beside the registry's live counts).

A group's ``fingerprint`` hashes its creation site, its kinds and, when it has one, its
cycle's text: leaks with the same site and the same cycle shape share it across runs.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .._analysis.diagnosis import Diagnosis, HandleDiagnosis, SignalInfo
from .._analysis.paths import PathStep, RefPath
from .._analysis.states import CLASSIFICATIONS, DESCRIPTIONS
from .._core.compat import DATACLASS_SLOTS
from .._core.snapshot import HandleGroup, Snapshot
from .._core.stacks import Frame
from .._sdk.access import AccessRecord
from .._sdk.native import NativeCheck, NativeRow
from .._sdk.signals import CallbackInfo
from ..errors import ReportError

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
    "make_report",
    "fingerprint_of",
]

REPORT_SCHEMA = "handletrace.report"
REPORT_VERSION = 1
HANDLES_PER_GROUP = 50  # handles listed individually per group in a report


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
    parent: Optional[str]
    thread: str
    age: float


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportFinding:
    """A known SDK leak pattern found in a group: what, where, the fix, and how often."""

    pattern: str
    title: str
    message: str
    filename: str
    lineno: int
    fix: str
    count: int = 1

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}" if self.filename else ""


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportAccess:
    """A call of connect / disconnect_all / start_* / stop_* on a group's SDK object."""

    action: str
    target: str
    filename: str
    lineno: int
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

    classification: Tuple[Tuple[str, int], ...]  # (classification, count), most urgent first
    findings: int
    duration: float
    objects_scanned: int
    stale_after: Optional[float] = None
    gc_collected: bool = False


@dataclass(frozen=True, **DATACLASS_SLOTS)
class GroupSummary:
    """A one-glance view of a group's diagnosis (derived from its fields, not serialised)."""

    classification: str
    summary: str
    cycle: Optional[RefPath]
    fix: str


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ReportGroup:
    """Live handles from one creation site (and, with a diagnosis, one cycle shape)."""

    fingerprint: str
    site: Optional[ReportFrame]
    count: int
    kinds: Tuple[Tuple[str, str, int], ...]  # (kind, owner, count)
    age_min: float
    age_max: float
    traceback: Tuple[ReportFrame, ...]  # oldest first: most recent call last
    handles: Tuple[ReportHandle, ...]
    # -- diagnosis (empty when none ran) ------------------------------------------------
    classification: Tuple[Tuple[str, int], ...] = ()  # (classification, count)
    cycle: Optional[RefPath] = None
    root_path: Optional[RefPath] = None
    subject: str = ""
    signals: Tuple[SignalInfo, ...] = ()
    access: Tuple[ReportAccess, ...] = ()
    findings: Tuple[ReportFinding, ...] = ()

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
    live: int
    groups: Tuple[ReportGroup, ...]
    created: int = 0
    released: int = 0
    released_by_cause: Mapping[str, int] = field(default_factory=dict)
    kinds: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    instrumentation_errors: int = 0
    notes: Tuple[str, ...] = ()
    #: How the diagnosis ran and its totals (``None``: no diagnosis).
    diagnosis: Optional[ReportDiagnosis] = None
    #: The SDK's native handle table beside the registry (``None``: not read).
    native: Optional[NativeCheck] = None

    @property
    def clean(self) -> bool:
        return self.live == 0

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {
            "schema": REPORT_SCHEMA,
            "version": REPORT_VERSION,
            "generated_at": self.generated_at,
            "pid": self.pid,
            "python": self.python,
            "sdk_version": self.sdk_version,
            "installed": self.installed,
            "summary": {
                "live": self.live,
                "groups": len(self.groups),
                "created": self.created,
                "released": self.released,
                "released_by_cause": dict(self.released_by_cause),
                "instrumentation_errors": self.instrumentation_errors,
            },
            "kinds": {k: dict(v) for k, v in self.kinds.items()},
            "groups": [_group_to_dict(g) for g in self.groups],
            "notes": list(self.notes),
        }
        if self.diagnosis is not None:
            d = self.diagnosis
            data["diagnosis"] = {
                "classification": dict(d.classification),
                "findings": d.findings,
                "duration": d.duration,
                "objects_scanned": d.objects_scanned,
                "stale_after": d.stale_after,
                "gc_collected": d.gc_collected,
            }
        if self.native is not None:
            data["native"] = {
                "native_total": self.native.native_total,
                "tracked_total": self.native.tracked_total,
                "relative": self.native.relative,
                "rows": [
                    {
                        "native_type": row.native_type,
                        "kinds": list(row.kinds),
                        "native": row.native,
                        "tracked": row.tracked,
                    }
                    for row in self.native.rows
                ],
            }
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "report") -> Report:
        """Rebuild a report from its JSON form; raises :class:`ReportError` if malformed."""
        try:
            return _report_from_dict(data, source)
        except ReportError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReportError(f"{source}: not a valid handletrace report ({exc!r})") from None


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
                kinds=tuple((k, o, n) for (k, o), n in group.kind_counts().items()),
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
    if diagnosis is not None:
        totals = diagnosis.counts()
        summary = ReportDiagnosis(
            classification=tuple((s, totals[s]) for s in CLASSIFICATIONS if s in totals),
            findings=sum(len(g.findings) for g in groups),
            duration=round(diagnosis.duration, 3),
            objects_scanned=diagnosis.objects_scanned,
            stale_after=diagnosis.stale_after,
            gc_collected=diagnosis.gc_collected,
        )
    return Report(
        generated_at=snapshot.taken_at,
        pid=os.getpid(),
        python=platform.python_version(),
        sdk_version=sdk_version,
        installed=installed,
        live=len(snapshot),
        groups=tuple(groups),
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


# -- (de)serialisation helpers -------------------------------------------------------------


def _frame_to_dict(frame: ReportFrame) -> Dict[str, Any]:
    return {
        "filename": frame.filename,
        "lineno": frame.lineno,
        "name": frame.name,
        "line": frame.line,
    }


def _step_to_dict(step: PathStep) -> Dict[str, Any]:
    return {
        "label": step.label,
        "type": step.type,
        "note": step.note,
        "filename": step.filename,
        "lineno": step.lineno,
    }


def _path_to_dict(path: RefPath) -> Dict[str, Any]:
    return {
        "kind": path.kind,
        "text": path.text,
        "root": path.root,
        "steps": [_step_to_dict(step) for step in path.steps],
        "held": [_step_to_dict(step) for step in path.held],
        "held_from": path.held_from,
    }


def _diagnosis_to_dict(group: ReportGroup) -> Dict[str, Any]:
    data: Dict[str, Any] = {}
    if group.classification:
        data["classification"] = dict(group.classification)
    if group.cycle is not None:
        data["cycle"] = _path_to_dict(group.cycle)
    if group.root_path is not None:
        data["root_path"] = _path_to_dict(group.root_path)
    if group.subject:
        data["subject"] = group.subject
    if group.signals:
        data["signals"] = [
            {
                "name": s.name,
                "declared_by": s.declared_by,
                "created": s.created,
                "callbacks": [
                    {"qualname": c.qualname, "filename": c.filename, "lineno": c.lineno}
                    for c in s.callbacks
                ],
            }
            for s in group.signals
        ]
    if group.access:
        data["access"] = [
            {
                "action": a.action,
                "target": a.target,
                "filename": a.filename,
                "lineno": a.lineno,
                "line": a.line,
                "thread": a.thread,
                "callback": a.callback,
                "by_sdk": a.by_sdk,
                "disconnected": a.disconnected,
            }
            for a in group.access
        ]
    if group.findings:
        data["findings"] = [
            {
                "pattern": f.pattern,
                "title": f.title,
                "message": f.message,
                "filename": f.filename,
                "lineno": f.lineno,
                "fix": f.fix,
                "count": f.count,
            }
            for f in group.findings
        ]
    return data


def _group_to_dict(group: ReportGroup) -> Dict[str, Any]:
    return {
        "fingerprint": group.fingerprint,
        "site": _frame_to_dict(group.site) if group.site else None,
        "count": group.count,
        "kinds": [{"kind": k, "owner": o, "count": n} for k, o, n in group.kinds],
        "age": {"min": group.age_min, "max": group.age_max},
        "traceback": [_frame_to_dict(f) for f in group.traceback],
        "handles": [
            {
                "seq": h.seq,
                "kind": h.kind,
                "address": h.address,
                "owner": h.owner,
                "parent": h.parent,
                "thread": h.thread,
                "age": h.age,
            }
            for h in group.handles
        ],
        **_diagnosis_to_dict(group),
    }


def _expect(value: Any, kind: type, what: str, source: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ReportError(f"{source}: {what} should be {kind.__name__}, got {type(value).__name__}")
    return value


def _frame_from_dict(data: Any, source: str) -> ReportFrame:
    _expect(data, dict, "a frame", source)
    return ReportFrame(
        _expect(data["filename"], str, "frame.filename", source),
        _expect(data["lineno"], int, "frame.lineno", source),
        _expect(data["name"], str, "frame.name", source),
        _expect(data.get("line", ""), str, "frame.line", source),
    )


def _step_from_dict(data: Any, source: str) -> PathStep:
    _expect(data, dict, "a path step", source)
    return PathStep(
        label=_expect(data["label"], str, "step.label", source),
        type=_expect(data.get("type", ""), str, "step.type", source),
        note=_expect(data.get("note", ""), str, "step.note", source),
        filename=_expect(data.get("filename", ""), str, "step.filename", source),
        lineno=_expect(data.get("lineno", 0), int, "step.lineno", source),
    )


def _path_from_dict(data: Any, source: str) -> Optional[RefPath]:
    if data is None:
        return None
    _expect(data, dict, "a path", source)
    return RefPath(
        kind=_expect(data["kind"], str, "path.kind", source),
        steps=tuple(
            _step_from_dict(s, source) for s in _expect(data["steps"], list, "path.steps", source)
        ),
        root=_expect(data.get("root", ""), str, "path.root", source),
        held=tuple(
            _step_from_dict(s, source)
            for s in _expect(data.get("held", []), list, "path.held", source)
        ),
        held_from=_expect(data.get("held_from", 0), int, "path.held_from", source),
    )


def _counts_from_dict(data: Any, what: str, source: str) -> Tuple[Tuple[str, int], ...]:
    _expect(data, dict, what, source)
    return tuple(
        (_expect(k, str, what, source), _expect(v, int, what, source)) for k, v in data.items()
    )


def _diagnosis_from_dict(g: Dict[str, Any], source: str) -> Dict[str, Any]:
    """The optional diagnosis fields of a group (absent in reports made without one)."""
    fields: Dict[str, Any] = {}
    if "classification" in g:
        fields["classification"] = _counts_from_dict(
            g["classification"], "group.classification", source
        )
    if g.get("cycle") is not None:
        fields["cycle"] = _path_from_dict(g["cycle"], source)
    if g.get("root_path") is not None:
        fields["root_path"] = _path_from_dict(g["root_path"], source)
    if "subject" in g:
        fields["subject"] = _expect(g["subject"], str, "group.subject", source)
    if "signals" in g:
        fields["signals"] = tuple(
            SignalInfo(
                name=_expect(s["name"], str, "signal.name", source),
                declared_by=_expect(s.get("declared_by", ""), str, "signal.declared_by", source),
                created=_expect(s.get("created", False), bool, "signal.created", source),
                callbacks=tuple(
                    CallbackInfo(
                        _expect(c["qualname"], str, "callback.qualname", source),
                        _expect(c.get("filename", ""), str, "callback.filename", source),
                        _expect(c.get("lineno", 0), int, "callback.lineno", source),
                    )
                    for c in _expect(s.get("callbacks", []), list, "signal.callbacks", source)
                ),
            )
            for s in _expect(g["signals"], list, "group.signals", source)
        )
    if "access" in g:
        fields["access"] = tuple(
            ReportAccess(
                action=_expect(a["action"], str, "access.action", source),
                target=_expect(a["target"], str, "access.target", source),
                filename=_expect(a.get("filename", ""), str, "access.filename", source),
                lineno=_expect(a.get("lineno", 0), int, "access.lineno", source),
                line=_expect(a.get("line", ""), str, "access.line", source),
                thread=_expect(a.get("thread", ""), str, "access.thread", source),
                callback=_expect(a.get("callback", ""), str, "access.callback", source),
                by_sdk=_expect(a.get("by_sdk", False), bool, "access.by_sdk", source),
                disconnected=(
                    None
                    if a.get("disconnected") is None
                    else _expect(a["disconnected"], bool, "access.disconnected", source)
                ),
            )
            for a in _expect(g["access"], list, "group.access", source)
        )
    if "findings" in g:
        fields["findings"] = tuple(
            ReportFinding(
                pattern=_expect(f["pattern"], str, "finding.pattern", source),
                title=_expect(f.get("title", ""), str, "finding.title", source),
                message=_expect(f["message"], str, "finding.message", source),
                filename=_expect(f.get("filename", ""), str, "finding.filename", source),
                lineno=_expect(f.get("lineno", 0), int, "finding.lineno", source),
                fix=_expect(f.get("fix", ""), str, "finding.fix", source),
                count=_expect(f.get("count", 1), int, "finding.count", source),
            )
            for f in _expect(g["findings"], list, "group.findings", source)
        )
    return fields


def _report_diagnosis_from_dict(data: Any, source: str) -> Optional[ReportDiagnosis]:
    if data is None:
        return None
    _expect(data, dict, "diagnosis", source)
    stale = data.get("stale_after")
    return ReportDiagnosis(
        classification=_counts_from_dict(
            data.get("classification", {}), "diagnosis.classification", source
        ),
        findings=_expect(data.get("findings", 0), int, "diagnosis.findings", source),
        duration=_expect(data.get("duration", 0.0), float, "diagnosis.duration", source),
        objects_scanned=_expect(
            data.get("objects_scanned", 0), int, "diagnosis.objects_scanned", source
        ),
        stale_after=(
            None if stale is None else _expect(stale, float, "diagnosis.stale_after", source)
        ),
        gc_collected=_expect(
            data.get("gc_collected", False), bool, "diagnosis.gc_collected", source
        ),
    )


def _native_from_dict(data: Any, source: str) -> Optional[NativeCheck]:
    if data is None:
        return None
    _expect(data, dict, "native", source)
    return NativeCheck(
        rows=tuple(
            NativeRow(
                native_type=_expect(r["native_type"], str, "native.native_type", source),
                kinds=tuple(
                    _expect(k, str, "native.kinds", source)
                    for k in _expect(r.get("kinds", []), list, "native.kinds", source)
                ),
                native=_expect(r["native"], int, "native.native", source),
                tracked=_expect(r["tracked"], int, "native.tracked", source),
            )
            for r in _expect(data.get("rows", []), list, "native.rows", source)
        ),
        native_total=_expect(data.get("native_total", 0), int, "native.native_total", source),
        tracked_total=_expect(data.get("tracked_total", 0), int, "native.tracked_total", source),
        relative=_expect(data.get("relative", False), bool, "native.relative", source),
    )


def _report_from_dict(data: Any, source: str) -> Report:
    _expect(data, dict, "the top level", source)
    if data.get("schema") != REPORT_SCHEMA:
        raise ReportError(f"{source}: not a handletrace report (schema is {data.get('schema')!r})")
    version = data.get("version")
    if version != REPORT_VERSION:
        raise ReportError(
            f"{source}: report version {version!r} is not supported (this handletrace reads "
            f"version {REPORT_VERSION})"
        )
    summary = _expect(data["summary"], dict, "summary", source)
    groups = []
    for g in _expect(data["groups"], list, "groups", source):
        _expect(g, dict, "a group", source)
        groups.append(
            ReportGroup(
                fingerprint=_expect(g["fingerprint"], str, "group.fingerprint", source),
                site=_frame_from_dict(g["site"], source) if g.get("site") is not None else None,
                count=_expect(g["count"], int, "group.count", source),
                kinds=tuple(
                    (
                        _expect(k["kind"], str, "kind", source),
                        _expect(k["owner"], str, "owner", source),
                        _expect(k["count"], int, "count", source),
                    )
                    for k in _expect(g["kinds"], list, "group.kinds", source)
                ),
                age_min=_expect(g["age"]["min"], float, "age.min", source),
                age_max=_expect(g["age"]["max"], float, "age.max", source),
                traceback=tuple(
                    _frame_from_dict(f, source)
                    for f in _expect(g["traceback"], list, "traceback", source)
                ),
                handles=tuple(
                    ReportHandle(
                        seq=_expect(h["seq"], int, "handle.seq", source),
                        kind=_expect(h["kind"], str, "handle.kind", source),
                        address=_expect(h["address"], str, "handle.address", source),
                        owner=_expect(h["owner"], str, "handle.owner", source),
                        parent=h.get("parent"),
                        thread=_expect(h["thread"], str, "handle.thread", source),
                        age=_expect(h["age"], float, "handle.age", source),
                    )
                    for h in _expect(g["handles"], list, "group.handles", source)
                ),
                **_diagnosis_from_dict(g, source),
            )
        )
    return Report(
        generated_at=_expect(data["generated_at"], float, "generated_at", source),
        pid=_expect(data["pid"], int, "pid", source),
        python=_expect(data["python"], str, "python", source),
        sdk_version=_expect(data["sdk_version"], str, "sdk_version", source),
        installed=_expect(data["installed"], bool, "installed", source),
        live=_expect(summary["live"], int, "summary.live", source),
        groups=tuple(groups),
        created=_expect(summary.get("created", 0), int, "summary.created", source),
        released=_expect(summary.get("released", 0), int, "summary.released", source),
        released_by_cause=dict(
            _expect(summary.get("released_by_cause", {}), dict, "causes", source)
        ),
        kinds=dict(_expect(data.get("kinds", {}), dict, "kinds", source)),
        instrumentation_errors=_expect(
            summary.get("instrumentation_errors", 0), int, "instrumentation_errors", source
        ),
        notes=tuple(_expect(data.get("notes", []), list, "notes", source)),
        diagnosis=_report_diagnosis_from_dict(data.get("diagnosis"), source),
        native=_native_from_dict(data.get("native"), source),
    )
