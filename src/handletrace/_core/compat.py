"""Small portability shims for CPython 3.9-3.13."""

from __future__ import annotations

import gc
import sys
from typing import Any

# ``dataclass(slots=True)`` exists from 3.10; on 3.9 the value types are simply not slotted.
DATACLASS_SLOTS: dict[str, Any] = {"slots": True} if sys.version_info >= (3, 10) else {}

# CPython 3.12.0-3.12.5 (gh-122695, fixed in 3.12.6): gc.get_referents() of the _asyncio
# module hands out the objects on its free list, which corrupts the list; the next
# collection then never ends. A heap scan must not ask for that module's referents there.
_ASYNCIO_REFERENTS_BROKEN = (3, 12, 0) <= sys.version_info[:3] < (3, 12, 6)


def referents(*objects: Any) -> list:
    """``gc.get_referents(*objects)``, safe on every supported CPython: where asking for the
    ``_asyncio`` module's referents corrupts its free list, its namespace stands for them."""
    if _ASYNCIO_REFERENTS_BROKEN:
        module = sys.modules.get("_asyncio")
        if module is not None and any(obj is module for obj in objects):
            kept = [obj for obj in objects if obj is not module]
            return [*gc.get_referents(*kept), module.__dict__]
    return gc.get_referents(*objects)
