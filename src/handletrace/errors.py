"""The exceptions and the warning handletrace raises, under one root.

``except handletrace.HandleTraceError`` catches every error handletrace raises on purpose;
the errors about bad input also derive from ``ValueError`` (what they were before the root
existed), so existing ``except ValueError`` handlers keep working; ``DisposedError`` derives
from ``RuntimeError``, what the SDK raises when a call fails.
"""

from __future__ import annotations

__all__ = [
    "DisposedError",
    "HandleTraceError",
    "HandleTraceWarning",
    "ReportError",
    "TimelineError",
]


class HandleTraceError(Exception):
    """Root of the errors handletrace raises."""


class HandleTraceWarning(UserWarning):
    """handletrace could not do what was asked; the program goes on unchanged."""


class ReportError(HandleTraceError, ValueError):
    """A saved report could not be read: it says what is wrong and where."""


class TimelineError(HandleTraceError, ValueError):
    """A saved timeline could not be read, or a timeline cannot be written as asked."""


class DisposedError(HandleTraceError, RuntimeError):
    """An SDK object was used after handletrace released its native handles
    (``dispose()``, ``disposing()``, ``adispose()``, ``release_all()``); the message says
    which object, by which call, where. A ``RuntimeError``, like the SDK's own errors."""
