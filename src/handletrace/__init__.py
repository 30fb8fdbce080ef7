"""handletrace: find and fix native-handle leaks in the Azure Speech SDK for Python.

Importing handletrace does nothing by itself: no patch, no I/O, no SDK import. Call
``handletrace.install()`` (or set ``HANDLETRACE=1``) to start tracking.
"""

from __future__ import annotations

from ._access import AccessRecord, access_records
from ._api import build, report, snapshot, stats
from ._cycles import PathStep, RefPath, find_cycle, to_dot, to_svg
from ._diagnosis import (
    CLASSIFICATIONS,
    Diagnosis,
    HandleDiagnosis,
    SignalInfo,
    diagnose,
    signals_tree,
)
from ._native import NativeCheck, NativeCounts, NativeRow, cross_check, read_native_counts
from ._patching import HandleTraceWarning, install, is_installed, uninstall
from ._patterns import PATTERNS, Finding, Pattern
from ._registry import RELEASE_CAUSES, HandleRecord, KindStats, Stats
from ._release import (
    DisposeResult,
    ReleaseAllResult,
    adispose,
    dispose,
    disposing,
    release_all,
)
from ._report import Report, ReportError
from ._snapshot import GroupDiff, HandleGroup, Snapshot
from ._stacks import Frame, Traceback
from ._tracker import Config

__version__ = "0.1.0"

__all__ = [
    "CLASSIFICATIONS",
    "PATTERNS",
    "RELEASE_CAUSES",
    "AccessRecord",
    "Config",
    "DisposeResult",
    "Diagnosis",
    "Finding",
    "Frame",
    "GroupDiff",
    "HandleDiagnosis",
    "HandleGroup",
    "HandleRecord",
    "HandleTraceWarning",
    "KindStats",
    "NativeCheck",
    "NativeCounts",
    "NativeRow",
    "PathStep",
    "Pattern",
    "RefPath",
    "ReleaseAllResult",
    "Report",
    "ReportError",
    "SignalInfo",
    "Snapshot",
    "Stats",
    "Traceback",
    "__version__",
    "adispose",
    "access_records",
    "build",
    "dispose",
    "disposing",
    "cross_check",
    "diagnose",
    "find_cycle",
    "install",
    "is_installed",
    "read_native_counts",
    "release_all",
    "report",
    "signals_tree",
    "snapshot",
    "stats",
    "to_dot",
    "to_svg",
    "uninstall",
]
