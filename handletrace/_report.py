"""Report building: turns a snapshot into plain, serialisable data (no I/O here).

The JSON form of a :class:`Report` is versioned: ``{"schema": "handletrace.report",
"version": 1, ...}``; README.md documents every field.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from ._compat import DATACLASS_SLOTS
from ._snapshot import HandleGroup, Snapshot
from ._stacks import Frame

__all__ = [
    "REPORT_SCHEMA",
    "REPORT_VERSION",
    "Report",
    "ReportError",
    "ReportFrame",
    "ReportGroup",
    "ReportHandle",
    "build_report",
    "fingerprint_of",
]

REPORT_SCHEMA = "handletrace.report"
REPORT_VERSION = 1
HANDLES_PER_GROUP = 50  # handles listed individually per group in a report


class ReportError(ValueError):
    """A saved report could not be read: it says what is wrong and where."""


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
class ReportGroup:
    """Live handles from one creation site."""

    fingerprint: str
    site: Optional[ReportFrame]
    count: int
    kinds: Tuple[Tuple[str, str, int], ...]  # (kind, owner, count)
    age_min: float
    age_max: float
    traceback: Tuple[ReportFrame, ...]  # oldest first: most recent call last
    handles: Tuple[ReportHandle, ...]


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

    @property
    def clean(self) -> bool:
        return self.live == 0

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return {
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

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "report") -> Report:
        """Rebuild a report from its JSON form; raises :class:`ReportError` if malformed."""
        try:
            return _report_from_dict(data, source)
        except ReportError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReportError(f"{source}: not a valid handletrace report ({exc!r})") from None


def fingerprint_of(group: HandleGroup) -> str:
    """A stable id for a creation site and what it creates (same across runs and machines)."""
    filename, lineno, name = group.site
    kinds = sorted({f"{kind}/{owner}" for kind, owner in group.kind_counts()})
    text = f"{os.path.basename(filename)}:{lineno}:{name}|{','.join(kinds)}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def build_report(snapshot: Snapshot, *, installed: bool, sdk_version: str) -> Report:
    """The report data for ``snapshot``: groups by creation site, largest first."""
    groups = []
    now = snapshot.taken_monotonic
    for group in snapshot.groups():
        ages = [record.age(now) for record in group.records]
        origin = group.origin
        groups.append(
            ReportGroup(
                fingerprint=fingerprint_of(group),
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
            )
        )
    stats = snapshot.stats
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
    )


# -- (de)serialisation helpers -------------------------------------------------------------


def _frame_to_dict(frame: ReportFrame) -> Dict[str, Any]:
    return {"filename": frame.filename, "lineno": frame.lineno, "name": frame.name, "line": frame.line}


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
        released_by_cause=dict(_expect(summary.get("released_by_cause", {}), dict, "causes", source)),
        kinds=dict(_expect(data.get("kinds", {}), dict, "kinds", source)),
        instrumentation_errors=_expect(
            summary.get("instrumentation_errors", 0), int, "instrumentation_errors", source
        ),
        notes=tuple(_expect(data.get("notes", []), list, "notes", source)),
    )

