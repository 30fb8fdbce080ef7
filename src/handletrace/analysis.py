"""The lower-level analysis API: what ``diagnose()`` is made of, for tools built on
handletrace (reference paths and cycles, signals, access records, known leak patterns, the
SDK's native handle table). ``handletrace`` itself exports what an application needs."""

from __future__ import annotations

from ._analysis.delivery import Delivery
from ._analysis.diagnosis import Leak, SignalInfo, signals_tree
from ._analysis.paths import PathStep, RefPath, find_cycle
from ._analysis.patterns import PATTERNS, Finding, Pattern
from ._analysis.states import CLASSIFICATIONS, DESCRIPTIONS, Classification
from ._report.graphviz import to_dot, to_svg
from ._sdk.access import AccessRecord, access_records
from ._sdk.native import NativeCheck, NativeCounts, NativeRow, cross_check, read_native_counts

__all__ = [
    "CLASSIFICATIONS",
    "DESCRIPTIONS",
    "PATTERNS",
    "AccessRecord",
    "Classification",
    "Delivery",
    "Finding",
    "Leak",
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
]
