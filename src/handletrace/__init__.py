"""handletrace: find and fix native-handle leaks in the Azure Speech SDK for Python.

Importing handletrace does nothing by itself: no patch, no I/O, no SDK import. Call
``handletrace.install()`` (or set ``HANDLETRACE=1``) to start tracking. Lower-level analysis
names (reference paths, signals, patterns, the native handle table) are in
:mod:`handletrace.analysis`.
"""

from __future__ import annotations

from ._core import arming
from ._version import __version__

TYPE_CHECKING = False  # typing is not imported at start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any

    from ._analysis.diagnosis import Diagnosis, HandleDiagnosis
    from ._analysis.states import CLASSIFICATIONS
    from ._api import blocking, build_report, diagnose, report, snapshot, stats
    from ._core.blocking import Blocking, BlockingEvent, BlockingSite, InFlight
    from ._core.config import Config
    from ._core.registry import RELEASE_CAUSES, HandleRecord, KindStats, Stats
    from ._core.snapshot import GroupDiff, HandleGroup, Snapshot
    from ._core.stacks import Frame, Traceback
    from ._core.threads import ThreadInfo
    from ._instrument.install import install, is_installed, uninstall
    from ._report.model import Report
    from ._report.render import render
    from .errors import (
        DisposedError,
        HandleTraceError,
        HandleTraceWarning,
        ReportError,
        TimelineError,
    )
    from .release import (
        DisposeResult,
        ReleaseAllResult,
        adispose,
        dispose,
        disposing,
        release_all,
    )

__all__ = [
    "CLASSIFICATIONS",
    "RELEASE_CAUSES",
    "Blocking",
    "BlockingEvent",
    "BlockingSite",
    "Config",
    "DisposeResult",
    "Diagnosis",
    "DisposedError",
    "Frame",
    "GroupDiff",
    "HandleDiagnosis",
    "HandleGroup",
    "HandleRecord",
    "HandleTraceError",
    "HandleTraceWarning",
    "InFlight",
    "KindStats",
    "ReleaseAllResult",
    "Report",
    "ReportError",
    "Snapshot",
    "Stats",
    "ThreadInfo",
    "TimelineError",
    "Traceback",
    "__version__",
    "adispose",
    "blocking",
    "build_report",
    "diagnose",
    "dispose",
    "disposing",
    "install",
    "is_installed",
    "release_all",
    "render",
    "report",
    "snapshot",
    "stats",
    "uninstall",
]

#: Names that moved: old name -> (module, new name). Still reachable here, with a warning.
_MOVED = {
    "build": ("handletrace", "build_report"),
    **{
        name: ("handletrace.analysis", name)
        for name in (
            "PATTERNS",
            "AccessRecord",
            "Finding",
            "NativeCheck",
            "NativeCounts",
            "NativeRow",
            "PathStep",
            "Pattern",
            "RefPath",
            "SignalInfo",
            "access_records",
            "cross_check",
            "find_cycle",
            "read_native_counts",
            "signals_tree",
            "to_dot",
            "to_svg",
        )
    },
}


#: Where each public name is defined. Loaded on first use (PEP 562), so that importing
#: handletrace, and ``HANDLETRACE=1`` at interpreter start, load none of the tracking,
#: analysis or report modules before they are needed (benchmarks/bench_startup.py).
_PUBLIC = {
    **dict.fromkeys(("Diagnosis", "HandleDiagnosis"), "_analysis.diagnosis"),
    "CLASSIFICATIONS": "_analysis.states",
    **dict.fromkeys(
        ("blocking", "build_report", "diagnose", "report", "snapshot", "stats"), "_api"
    ),
    **dict.fromkeys(("Blocking", "BlockingEvent", "BlockingSite", "InFlight"), "_core.blocking"),
    "Config": "_core.config",
    **dict.fromkeys(("RELEASE_CAUSES", "HandleRecord", "KindStats", "Stats"), "_core.registry"),
    **dict.fromkeys(("GroupDiff", "HandleGroup", "Snapshot"), "_core.snapshot"),
    **dict.fromkeys(("Frame", "Traceback"), "_core.stacks"),
    "ThreadInfo": "_core.threads",
    **dict.fromkeys(("install", "is_installed", "uninstall"), "_instrument.install"),
    "Report": "_report.model",
    "render": "_report.render",
    **dict.fromkeys(
        ("DisposedError", "HandleTraceError", "HandleTraceWarning", "ReportError", "TimelineError"),
        "errors",
    ),
    **dict.fromkeys(
        (
            "DisposeResult",
            "ReleaseAllResult",
            "adispose",
            "dispose",
            "disposing",
            "release_all",
        ),
        "release",
    ),
}


def __getattr__(name: str) -> Any:
    where = _PUBLIC.get(name)
    if where is not None:
        # HANDLETRACE=1 armed at start: the API sees tracking as it asked for, as if the
        # activation had run then (it runs now, once).
        arming.complete()
        value = getattr(__import__(f"{__name__}.{where}", None, None, [name]), name)
        globals()[name] = value
        return value
    if name == "analysis":  # the submodule, on first use (``handletrace.analysis.to_dot``)
        import importlib

        return importlib.import_module("handletrace.analysis")
    moved = _MOVED.get(name)
    if moved is None:
        raise AttributeError(f"module 'handletrace' has no attribute {name!r}")
    module_name, new_name = moved
    import importlib
    import warnings

    warnings.warn(
        f"handletrace.{name} is now {module_name}.{new_name}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module_name), new_name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
