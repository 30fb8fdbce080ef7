"""The tracking options the environment gives ``install()``: ``HANDLETRACE_STACK_DEPTH``,
``HANDLETRACE_STACK_SAMPLE`` and ``HANDLETRACE_KINDS``.

They apply wherever tracking starts (``install()``, ``HANDLETRACE=1``, ``handletrace run``,
the pytest plugin), not only with ``HANDLETRACE=1``; an argument or command-line option
always wins over them. A bad value gives one :class:`HandleTraceWarning` naming the variable,
the value and what is accepted (once per process, however often ``install()`` runs), and
the default is used.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Set, Tuple

from .._core.config import MAX_SLOW_RELEASE, MAX_STACK_DEPTH, MAX_STACK_SAMPLE
from .._core.state import TRACKER
from .._sdk.kinds import unknown_kinds_message
from ..errors import HandleTraceWarning

__all__ = [
    "ENV_KINDS",
    "ENV_SLOW_RELEASE",
    "ENV_STACK_DEPTH",
    "ENV_STACK_SAMPLE",
    "MAX_STACK_SAMPLE",
    "OPTIONS",
    "EnvTracking",
    "ignoring",
    "parse_count",
    "tracking_from_env",
    "warn_once",
]

#: Frames kept per creation stack: an integer from 0 to 256 (default 16).
ENV_STACK_DEPTH = "HANDLETRACE_STACK_DEPTH"
#: Stack sampling: 1 = every handle (default), N = one handle in N, 0 = no stacks.
ENV_STACK_SAMPLE = "HANDLETRACE_STACK_SAMPLE"
#: Comma-separated handle kinds to track (e.g. ``recognizer,property_bag``), or ``all``.
ENV_KINDS = "HANDLETRACE_KINDS"
#: Seconds a native release (or an SDK call on an event loop) must take to be recorded as
#: blocking: a number from 0 to 3600 (default 0.1).
ENV_SLOW_RELEASE = "HANDLETRACE_SLOW_RELEASE"

ACCEPTED_STACK_DEPTH = f"an integer from 0 to {MAX_STACK_DEPTH}"
ACCEPTED_STACK_SAMPLE = (
    f"1 (every handle), N from 2 to {MAX_STACK_SAMPLE} (one in N) or 0 (no stacks)"
)
ACCEPTED_KINDS = "comma-separated kind names such as recognizer,property_bag, or all"
ACCEPTED_SLOW_RELEASE = f"a number of seconds from 0 to {MAX_SLOW_RELEASE:g}, such as 0.1 or 2"


@dataclass(frozen=True)
class EnvTracking:
    """What the environment asks ``install()`` for; ``None``: not set, or set to a bad value
    (the default applies)."""

    stack_depth: Optional[int] = None
    stack_sample: Optional[int] = None
    kinds: Optional[FrozenSet[str]] = None  #: ``None``: every kind
    slow_release: Optional[float] = None


def ignoring(name: str, value: str, reason: str) -> str:
    """The message for a bad environment value: ``reason`` says what is accepted."""
    return f"handletrace: ignoring {name}={value!r}: {reason}; using the default"


def parse_count(value: str, high: Optional[int] = None) -> Optional[int]:
    """A whole number from 0 to ``high`` written in ASCII digits (blanks around it are
    ignored), or ``None``: no sign, no fraction, no exponent, no underscore."""
    text = value.strip()
    if not text or not text.isdigit() or not text.isascii():
        return None
    number = int(text)
    return number if high is None or number <= high else None


def _kinds(raw: str) -> Tuple[Optional[FrozenSet[str]], Optional[str]]:
    """(kinds, problem) for a ``HANDLETRACE_KINDS`` value; kinds ``None`` is every kind."""
    if raw.strip().lower() in ("", "all"):
        return None, None
    names = [part.strip() for part in raw.split(",")]
    if not all(name.replace("_", "").isalnum() for name in names):
        return None, f"expected {ACCEPTED_KINDS}"
    unknown = unknown_kinds_message(names)
    if unknown is not None:
        return None, unknown
    return frozenset(names), None


def _stack_depth(raw: str) -> Tuple[Optional[int], Optional[str]]:
    depth = parse_count(raw, MAX_STACK_DEPTH)
    return depth, None if depth is not None else f"expected {ACCEPTED_STACK_DEPTH}"


def _stack_sample(raw: str) -> Tuple[Optional[int], Optional[str]]:
    sample = parse_count(raw, MAX_STACK_SAMPLE)
    return sample, None if sample is not None else f"expected {ACCEPTED_STACK_SAMPLE}"


def _slow_release(raw: str) -> Tuple[Optional[float], Optional[str]]:
    text = raw.strip()
    try:
        seconds = float(text) if text.isascii() and "_" not in text else None
    except ValueError:
        seconds = None
    if seconds is None or not math.isfinite(seconds) or not 0 <= seconds <= MAX_SLOW_RELEASE:
        return None, f"expected {ACCEPTED_SLOW_RELEASE}"
    return seconds, None


#: install()'s option, its variable, and the parser giving (value, problem) for a value.
_VARIABLES = (
    ("stack_depth", ENV_STACK_DEPTH, _stack_depth),
    ("stack_sample", ENV_STACK_SAMPLE, _stack_sample),
    ("kinds", ENV_KINDS, _kinds),
    ("slow_release", ENV_SLOW_RELEASE, _slow_release),
)
OPTIONS = tuple(option for option, _, _ in _VARIABLES)


def tracking_from_env(
    environ: Optional[Mapping[str, str]] = None, options: Iterable[str] = OPTIONS
) -> Tuple[EnvTracking, List[str]]:
    """Read and validate the variables of ``options`` (default: all of them): the settings, and
    one message per bad value."""
    env = os.environ if environ is None else environ
    wanted = frozenset(options)
    found: Dict[str, Any] = {}
    problems: List[str] = []
    for option, variable, parse in _VARIABLES:
        raw = env.get(variable) if option in wanted else None
        if raw is None:
            continue
        value, problem = parse(raw)
        if problem is not None:
            problems.append(ignoring(variable, raw, problem))
        elif value is not None:
            found[option] = value
    return EnvTracking(**found), problems


# The messages already given in this process: a bad value warns once, however many times
# install() reads it (a test suite, or HANDLETRACE=1 and then handletrace run).
_warned: Set[str] = set()


def warn_once(messages: Iterable[str], stacklevel: int = 2) -> None:
    """Warn (:class:`HandleTraceWarning`) each message not yet given in this process."""
    for message in messages:
        if message not in _warned:
            _warned.add(message)
            warnings.warn(message, HandleTraceWarning, stacklevel=stacklevel + 1)


TRACKER.on_reset.append(_warned.clear)
