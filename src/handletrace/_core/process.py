"""The process's native resources that the Speech SDK multiplies: its threads and its open
sockets, read from ``/proc`` (``None`` where there is no ``/proc``, as on macOS and
Windows). Each live recognizer has threads of its own and a websocket to the service, so
these counts beside the SDK's handle table show what a leak costs outside the Python heap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from .compat import DATACLASS_SLOTS

__all__ = ["ProcessCounts", "count_sockets", "count_threads", "read_process_counts"]

_TASKS = "/proc/self/task"
_FDS = "/proc/self/fd"


@dataclass(frozen=True, **DATACLASS_SLOTS)
class ProcessCounts:
    """Native threads and open sockets of this process (``None``: not readable here)."""

    threads: Optional[int] = None
    sockets: Optional[int] = None


def count_threads() -> Optional[int]:
    """The process's native threads (Python's and every native library's), or ``None``."""
    try:
        return len(os.listdir(_TASKS))
    except OSError:
        return None


def count_sockets() -> Optional[int]:
    """The process's open socket descriptors (TCP, UDP and Unix alike), or ``None``."""
    try:
        names = os.listdir(_FDS)
    except OSError:
        return None
    sockets = 0
    for name in names:
        try:
            if os.readlink(f"{_FDS}/{name}").startswith("socket:"):
                sockets += 1
        except OSError:  # closed since the listing (the listing's own descriptor, too)
            continue
    return sockets


def read_process_counts() -> ProcessCounts:
    """The process's threads and sockets now: two directory listings and one ``readlink``
    per open descriptor (measured: 35 µs with 6 descriptors, 0.8 ms with 206), once per
    report."""
    return ProcessCounts(count_threads(), count_sockets())
