"""Small portability shims for CPython 3.9-3.13."""

from __future__ import annotations

import sys
from typing import Any

# ``dataclass(slots=True)`` exists from 3.10; on 3.9 the value types are simply not slotted.
DATACLASS_SLOTS: dict[str, Any] = {"slots": True} if sys.version_info >= (3, 10) else {}
