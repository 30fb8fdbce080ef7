"""The wrappers that write access records (see ``_sdk/access.py``) when the SDK methods of
``kinds.ACCESS_METHODS`` are called: connect / disconnect_all on an ``EventSignal``, and
``start_*`` / ``stop_*`` on a recognizer, transcriber, synthesizer or connector."""

from __future__ import annotations

import os
import sys
import threading
import time
from types import FrameType
from typing import AbstractSet, Any, Callable, Optional, Tuple

from .._core.registry import thread_name
from .._core.stacks import Frame, machinery_files
from .._sdk.access import ACCESS_ATTR, MAX_RECORDS, AccessRecord
from .._sdk.signals import describe_callable, signal_owner

__all__ = ["access_wrapper"]


def _site(
    start: Optional[FrameType],
    sdk_prefix: str,
    internal_dirs: Tuple[str, ...],
    machinery: AbstractSet[str],
) -> Tuple[Optional[Frame], bool]:
    """(first frame outside the SDK, wrapt and handletrace's machinery, whether the direct
    caller is the SDK). ``internal_dirs``: wrapt's; ``machinery``: ``machinery_files()``."""
    frame = start
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename not in machinery and not filename.startswith(internal_dirs):
            break
        frame = frame.f_back
    by_sdk = frame is not None and frame.f_code.co_filename.startswith(sdk_prefix)
    skipped = (sdk_prefix, *internal_dirs)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename not in machinery and not filename.startswith(skipped):
            break
        frame = frame.f_back
    if frame is None:
        return None, by_sdk
    code = frame.f_code
    return Frame(code.co_filename, frame.f_lineno, code.co_name), by_sdk


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
    internal_dirs = tuple(
        os.path.join(d, "") for d in patcher.internal_dirs if not sdk_prefix.startswith(d)
    )
    machinery = machinery_files()
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
            owner, target = signal_owner(instance)
            if owner is None:
                return
        else:
            owner, target = instance, method
        site, by_sdk = _site(getframe(2), sdk_prefix, internal_dirs, machinery)
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
