"""What a thread is, as far as blocking matters: its name, whether Python started it (the SDK
calls back on native threads Python did not start) and whether an asyncio event loop runs
on it. Read without side effects: no ``_DummyThread`` is made for a native thread, asyncio
is never imported."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Dict, Optional

from .compat import DATACLASS_SLOTS

__all__ = ["ThreadInfo", "describe_thread", "loop_in_frames", "loop_running_here"]

# Running threads by ident (read without creating a _DummyThread for native SDK threads).
_active: Dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ThreadInfo:
    """A thread a release or a call ran on."""

    ident: int
    name: str
    #: Python did not start it: one of the SDK's native callback threads.
    sdk_thread: bool = False
    #: An asyncio event loop was running on it (everything else on that loop waited).
    event_loop: bool = False

    def __str__(self) -> str:
        what = []
        if self.event_loop:
            what.append("event loop")
        if self.sdk_thread:
            what.append("SDK callback thread")
        return f"{self.name} ({', '.join(what)})" if what else self.name


def loop_running_here() -> bool:
    """Whether an asyncio event loop is running on the calling thread (never imports asyncio:
    a program that has not imported it runs no loop)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        return asyncio._get_running_loop() is not None  # type: ignore[attr-defined]
    except Exception:
        return False


def loop_in_frames(frame: Optional[FrameType]) -> bool:
    """Whether a thread whose innermost frame is ``frame`` is running an asyncio event loop
    (``BaseEventLoop.run_forever`` is on its stack): for another thread, whose running loop
    cannot be asked for directly."""
    while frame is not None:
        code = frame.f_code
        if code.co_name in ("run_forever", "_run_once") and code.co_filename.endswith(
            ("base_events.py",)
        ):
            return True
        frame = frame.f_back
    return False


def describe_thread(ident: int, *, event_loop: Optional[bool] = None) -> ThreadInfo:
    """The :class:`ThreadInfo` of the thread ``ident``. ``event_loop``: known already (the
    calling thread asks :func:`loop_running_here`); ``None``: looked for on its stack."""
    thread = _active.get(ident)
    foreign = thread is None or isinstance(thread, threading._DummyThread)  # type: ignore[attr-defined]
    name = thread.name if thread is not None else f"native-{ident}"
    if event_loop is None:
        frame = sys._current_frames().get(ident)
        event_loop = loop_in_frames(frame)
        del frame
    return ThreadInfo(ident, name, foreign, event_loop)
