"""The classifications a diagnosis gives a live handle, most urgent first.

``cyclic-garbage``
    unreachable: only a cyclic garbage collection would release it (a callback closure that
    captures its recognizer, say).
``orphaned``
    its Python object is gone but the native handle was never released (e.g. the async
    handle of a ``ResultFuture`` dropped without ``get()``).
``releasing``
    its native release has started and not returned: it is blocking the thread running it
    (still live: the native object and its threads are still there).
``stale``
    reachable, and older than the ``stale_after`` threshold.
``reachable``
    still referenced from a root (a module global, a thread's frame...): in use, or held too long.
``unknown``
    not seen by the heap scan (created while it ran, or frozen with ``gc.freeze()``).
``released``
    released after the snapshot was taken.
"""

from __future__ import annotations

from typing import Literal, Mapping, Tuple

__all__ = [
    "CLASSIFICATIONS",
    "CYCLIC_GARBAGE",
    "Classification",
    "DESCRIPTIONS",
    "ORPHANED",
    "REACHABLE",
    "RELEASED",
    "RELEASING",
    "STALE",
    "UNKNOWN",
]

#: A classification's name (one of :data:`CLASSIFICATIONS`).
Classification = Literal[
    "cyclic-garbage", "orphaned", "releasing", "stale", "reachable", "unknown", "released"
]

CYCLIC_GARBAGE: Classification = "cyclic-garbage"
ORPHANED: Classification = "orphaned"
RELEASING: Classification = "releasing"
STALE: Classification = "stale"
REACHABLE: Classification = "reachable"
UNKNOWN: Classification = "unknown"
RELEASED: Classification = "released"
#: Every classification, most urgent first (the order reports use).
CLASSIFICATIONS: Tuple[str, ...] = (
    CYCLIC_GARBAGE,
    ORPHANED,
    RELEASING,
    STALE,
    REACHABLE,
    UNKNOWN,
    RELEASED,
)
#: One line per classification, for reports.
DESCRIPTIONS: Mapping[str, str] = {
    CYCLIC_GARBAGE: "unreachable; only a cyclic garbage collection would release it",
    ORPHANED: "its Python object is gone but the native handle was never released",
    RELEASING: "its native release has started and not returned (it blocks that thread)",
    STALE: "still referenced, and older than the stale threshold",
    REACHABLE: "still referenced from a root",
    UNKNOWN: "not seen by the heap scan (created meanwhile, or frozen)",
    RELEASED: "released after the snapshot was taken",
}
