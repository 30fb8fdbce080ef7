"""handletrace: find and fix native-handle leaks in the Azure Speech SDK for Python.

Importing handletrace does nothing by itself: no patch, no I/O, no SDK import. Call
``handletrace.install()`` (or set ``HANDLETRACE=1``) to start tracking.
"""

from __future__ import annotations

from ._api import build, report, snapshot, stats
from ._patching import HandleTraceWarning, install, is_installed, uninstall
from ._registry import RELEASE_CAUSES, HandleRecord, KindStats, Stats
from ._report import Report, ReportError
from ._snapshot import GroupDiff, HandleGroup, Snapshot
from ._stacks import Frame, Traceback
from ._tracker import Config

__version__ = "0.1.0"

__all__ = [
    "RELEASE_CAUSES",
    "Config",
    "Frame",
    "GroupDiff",
    "HandleGroup",
    "HandleRecord",
    "HandleTraceWarning",
    "KindStats",
    "Report",
    "ReportError",
    "Snapshot",
    "Stats",
    "Traceback",
    "__version__",
    "build",
    "install",
    "is_installed",
    "report",
    "snapshot",
    "stats",
    "uninstall",
]
