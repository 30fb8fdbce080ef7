"""The exceptions and the warning handletrace raises, under one root.

``except handletrace.HandleTraceError`` catches every error handletrace raises on purpose;
the concrete errors also derive from ``ValueError`` (what they were before the root existed),
so existing ``except ValueError`` handlers keep working.
"""

from __future__ import annotations

__all__ = ["HandleTraceError", "HandleTraceWarning", "ReportError", "TimelineError"]


class HandleTraceError(Exception):
    """Root of the errors handletrace raises."""


class HandleTraceWarning(UserWarning):
    """handletrace could not do what was asked; the program goes on unchanged."""


class ReportError(HandleTraceError, ValueError):
    """A saved report could not be read: it says what is wrong and where."""


class TimelineError(HandleTraceError, ValueError):
    """A saved timeline could not be read, or a timeline cannot be written as asked."""
