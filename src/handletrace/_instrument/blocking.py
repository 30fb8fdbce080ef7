"""The wrappers that time blocking SDK calls made on an event-loop thread (the table
``kinds.BLOCKING_CALLS``): a call that holds the loop for at least ``config.slow_release``
is recorded in ``tracker.blocking`` with the line that made it.

Off an event loop a wrapper costs one check (is a loop running on this thread?). A call of
``ResultFuture.get()`` from one of the SDK's own synchronous methods (``recognize_once()``,
``stop_continuous_recognition()``...) is named after that method; one made by the
application after the ``*_async()`` call that made the future.
"""

from __future__ import annotations

import sys
import time
from types import FrameType
from typing import Any, Callable, Optional, Tuple

from .._core.state import Tracker
from .._core.threads import loop_running_here
from .._sdk.blocking import record_call
from .._sdk.kinds import CALL_ATTR
from .._sdk.modules import is_sdk_code

__all__ = ["blocking_call_wrapper", "call_name"]


def _self_of(frame: FrameType) -> Any:
    code = frame.f_code
    if code.co_argcount and code.co_varnames[0] == "self":
        return frame.f_locals.get("self")
    return None


def call_name(path: str, instance: Any, caller: Optional[FrameType]) -> Tuple[str, str]:
    """(what was called, the class of the SDK object it was called on) for the method
    ``path`` (``"ResultFuture.get"``) of ``instance``, called from ``caller``."""
    if caller is not None and is_sdk_code(caller.f_code.co_filename):
        owner = _self_of(caller)  # an SDK method waiting on its own future
        if owner is not None:
            name = type(owner).__qualname__
            return f"{name}.{caller.f_code.co_name}()", name
    if path == "ResultFuture.get":
        made_by = getattr(instance, CALL_ATTR, None)
        if isinstance(made_by, str):
            return f"{made_by}().get()", made_by.rpartition(".")[0]
        return "ResultFuture.get()", "ResultFuture"
    name = type(instance).__qualname__ if instance is not None else path.split(".")[0]
    return f"{name}.{path.split('.', 1)[1]}()", name


def blocking_call_wrapper(tracker: Tracker, path: str) -> Callable[..., Any]:
    """The wrapt wrapper for the SDK method ``path`` (``"Class.method"``)."""
    registry = tracker.registry
    monotonic = time.monotonic
    getframe = sys._getframe
    on_loop = loop_running_here

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        # Closure variables only outside the try: a future's get() may run at shutdown.
        if not tracker.installed or not on_loop():
            return wrapped(*args, **kwargs)
        started = monotonic()
        try:
            return wrapped(*args, **kwargs)
        finally:
            duration = monotonic() - started
            if duration >= tracker.config.slow_release:
                try:
                    caller = getframe(1)
                    name, owner = call_name(path, instance, caller)
                    record_call(tracker, name, owner, duration, caller)
                    del caller
                except Exception as exc:
                    registry.count_error(f"{path} (blocking call)", exc)

    return wrapper
