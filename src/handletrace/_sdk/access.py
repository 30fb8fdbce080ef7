"""Access records (Netty-style): where a recognizer's signals were connected and its
operations started or stopped, so a report can say "callback connected at service.py:42,
never disconnected".

This module is the value type and its reader; the wrappers that write the records are
``_instrument/access.py``, applied to the SDK methods of ``kinds.ACCESS_METHODS``. Each record
is plain data (names, file, line, thread): no callback, argument or frame is kept. Records
are stored on the SDK object itself (attribute :data:`ACCESS_ATTR`), so they die with it and
never keep anything alive; at most :data:`MAX_RECORDS` are kept per object (the newest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

from .._core.compat import DATACLASS_SLOTS
from .._core.stacks import Frame
from .signals import CallbackInfo

__all__ = [
    "ACCESS_ATTR",
    "ACTIONS",
    "AccessRecord",
    "MAX_RECORDS",
    "access_records",
]

#: Attribute holding the list of access records on an SDK object.
ACCESS_ATTR = "_handletrace_access"
MAX_RECORDS = 32

#: ``connect`` / ``disconnect_all``: on one of the object's EventSignals (``target`` is the
#: signal name); ``start`` / ``stop``: a ``start_*`` / ``stop_*`` method (``target`` is its name).
ACTIONS = ("connect", "disconnect_all", "start", "stop")


@dataclass(frozen=True, **DATACLASS_SLOTS)
class AccessRecord:
    """One call of ``connect`` / ``disconnect_all`` / ``start_*`` / ``stop_*`` on an SDK object."""

    action: str
    target: str
    site: Optional[Frame]  # the calling line outside the SDK (None if there was none)
    thread_name: str
    at: float  # time.time()
    #: ``connect`` only: the callable connected.
    callback: Optional[CallbackInfo] = None
    #: The call was made by the SDK itself (e.g. the lambda it connects for a token_credential).
    by_sdk: bool = False

    def __str__(self) -> str:
        what = f"{self.action} {self.target}"
        if self.callback is not None:
            what += f" -> {self.callback.qualname}"
        where = f" at {self.site}" if self.site is not None else ""
        return f"{what}{where}{' (by the SDK)' if self.by_sdk else ''}"


def access_records(obj: Any) -> Tuple[AccessRecord, ...]:
    """The access records kept on ``obj`` (oldest first; empty if none)."""
    try:
        # Past any __getattribute__ override: reading the report must not run user code.
        records = object.__getattribute__(obj, "__dict__").get(ACCESS_ATTR)
    except Exception:
        return ()
    return tuple(records) if records else ()
