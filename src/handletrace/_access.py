"""Access records (Netty-style): where a recognizer's signals were connected and its
operations started or stopped, so a report can say "callback connected at service.py:42,
never disconnected".

The wrappers are declared in ``_patching.ACCESS_METHODS`` and installed with the others.
Each record is plain data (names, file, line, thread): no callback, argument or frame is
kept. Records are stored on the SDK object itself (attribute :data:`ACCESS_ATTR`), so they
die with it and never keep anything alive; at most :data:`MAX_RECORDS` are kept per object
(the newest).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Optional, Tuple

from ._compat import DATACLASS_SLOTS
from ._registry import thread_name
from ._signals import CallbackInfo, _public_name, describe_callable
from ._stacks import Frame

__all__ = [
    "ACCESS_ATTR",
    "ACTIONS",
    "AccessRecord",
    "MAX_RECORDS",
    "access_records",
    "access_wrapper",
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


def _site(
    start: Optional[FrameType], sdk_prefix: str, internal: Tuple[str, ...]
) -> Tuple[Optional[Frame], bool]:
    """(first frame outside SDK and handletrace/wrapt, whether the direct caller is the SDK)."""
    frame = start
    while frame is not None and frame.f_code.co_filename.startswith(internal):
        frame = frame.f_back
    by_sdk = frame is not None and frame.f_code.co_filename.startswith(sdk_prefix)
    while frame is not None and frame.f_code.co_filename.startswith((sdk_prefix, *internal)):
        frame = frame.f_back
    if frame is None:
        return None, by_sdk
    code = frame.f_code
    return Frame(code.co_filename, frame.f_lineno, code.co_name), by_sdk


def _signal_owner(signal: Any) -> Tuple[Any, str]:
    """The object an EventSignal belongs to, and the signal's name on it."""
    context = vars(signal).get("_EventSignal__context")
    owner = context.get() if context is not None else None
    if owner is None:
        return None, ""
    for attribute, value in list(vars(owner).items()):
        if value is signal:
            return owner, _public_name(attribute) or attribute
    return owner, ""


def _store(owner: Any, record: AccessRecord) -> None:
    records = vars(owner).setdefault(ACCESS_ATTR, [])
    records.append(record)
    if len(records) > MAX_RECORDS:
        del records[0]


def access_wrapper(patcher: Any, path: str) -> Callable[..., Any]:
    """The wrapt wrapper for the SDK method ``path`` (``"Class.method"``) of the access table."""
    tracker = patcher.tracker
    registry = tracker.registry
    sdk_prefix = patcher.sdk_dir
    internal = _internal_prefixes(patcher)
    getframe = sys._getframe
    get_ident = threading.get_ident
    method = path.split(".", 1)[1]
    if path.startswith("EventSignal."):
        action = "connect" if method == "connect" else "disconnect_all"
    else:
        action = "start" if method.startswith("start_") else "stop"

    def record_access(instance: Any, args: Any, kwargs: Any) -> None:
        callback = None
        if action == "disconnect_all" and not instance.is_connected():
            return  # nothing to disconnect (e.g. EventSignal.__del__ of an unused signal)
        if action in ("connect", "disconnect_all"):
            owner, target = _signal_owner(instance)
            if owner is None:
                return
        else:
            owner, target = instance, method
        site, by_sdk = _site(getframe(2), sdk_prefix, internal)
        if by_sdk and action != "connect":
            # start_*() calling its *_async twin; the SDK's __del__ disconnecting signals
            return
        if action == "connect":
            callback = describe_callable(args[0] if args else kwargs.get("callback"))
        ident = get_ident()
        _store(
            owner,
            AccessRecord(action, target, site, thread_name(ident), time.time(), callback, by_sdk),
        )

    # Outside its try, the wrapper touches closure variables only: EventSignal.__del__ calls
    # disconnect_all, and finalisers can run at interpreter shutdown, after module globals
    # are cleared (a failure inside record_access is caught and counted).
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if tracker.installed and instance is not None:
            try:
                record_access(instance, args, kwargs)
            except Exception as exc:
                registry.count_error(f"{path} (access record)", exc)
        return wrapped(*args, **kwargs)

    return wrapper


def _internal_prefixes(patcher: Any) -> Tuple[str, ...]:
    import os

    own = os.path.dirname(os.path.abspath(__file__))
    dirs = [own, *(d for d in patcher.internal_dirs if not patcher.sdk_dir.startswith(d))]
    return tuple(os.path.join(d, "") for d in dirs)
