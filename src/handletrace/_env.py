"""Activation from the environment (``HANDLETRACE=1``) and the at-exit report.

Every variable is declared here with what it accepts. An invalid value produces one
:class:`HandleTraceWarning` naming the variable, the value and what is accepted; the default
is used and the program runs on.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable, FrozenSet, List, Mapping, Optional, Tuple

from ._core.config import (
    DEFAULT_STACK_DEPTH,
    MAX_STACK_DEPTH,
    SWITCH_WORDS,
    format_for_path,
    parse_switch,
)
from ._core.state import TRACKER
from ._instrument.install import install
from .errors import HandleTraceWarning

__all__ = [
    "ENV_ENABLE",
    "ENV_KINDS",
    "ENV_METRICS",
    "ENV_REPORT",
    "ENV_REPORT_FORMAT",
    "ENV_STACK_DEPTH",
    "ENV_STACK_SAMPLE",
    "ENV_STALE_AFTER",
    "EnvSettings",
    "activate",
    "activate_from_env",
    "settings_from_env",
]

#: ``1``/``true``/``yes``/``on`` to track from interpreter start; ``0``/``false``/``no``/``off``.
ENV_ENABLE = "HANDLETRACE"
#: Frames kept per creation stack: an integer from 0 to 256 (default 16).
ENV_STACK_DEPTH = "HANDLETRACE_STACK_DEPTH"
#: Stack sampling: 1 = every handle (default), N = one handle in N, 0 = no stacks.
ENV_STACK_SAMPLE = "HANDLETRACE_STACK_SAMPLE"
#: Comma-separated handle kinds to track (e.g. ``recognizer,property_bag``), or ``all``.
ENV_KINDS = "HANDLETRACE_KINDS"
#: Where the at-exit report goes: ``stderr`` (default), ``stdout``, ``none``, or a file path.
ENV_REPORT = "HANDLETRACE_REPORT"
#: ``text``, ``json`` or ``html``; default ``json`` when the report path ends in ``.json``,
#: ``html`` when it ends in ``.html`` or ``.htm``, else ``text``.
ENV_REPORT_FORMAT = "HANDLETRACE_REPORT_FORMAT"
#: Seconds after which a still-referenced live handle is classified ``stale`` in the at-exit
#: report: a number greater than 0 (``300``, ``2.5``); unset, no handle is ``stale``.
ENV_STALE_AFTER = "HANDLETRACE_STALE_AFTER"
#: ``otel`` to export handle metrics through OpenTelemetry (``handletrace.metrics.enable()``
#: on the global meter provider; needs ``handletrace[otel]``), or ``none`` (default).
ENV_METRICS = "HANDLETRACE_METRICS"

#: The formats of the at-exit report.
REPORT_FORMATS = ("text", "json", "html")


@dataclass(frozen=True)
class EnvSettings:
    """What the environment asks for, after validation."""

    enabled: bool = False
    stack_depth: int = DEFAULT_STACK_DEPTH
    stack_sample: int = 1
    kinds: Optional[FrozenSet[str]] = None
    report: str = "stderr"
    report_format: str = "text"
    metrics: str = "none"
    stale_after: Optional[float] = None


def _parse_seconds(value: str) -> Optional[float]:
    """A finite number of seconds greater than 0, or None."""
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds


def _parse_int(value: str, low: int, high: Optional[int]) -> Optional[int]:
    try:
        number = int(value.strip())
    except ValueError:
        return None
    if number < low or (high is not None and number > high):
        return None
    return number


def settings_from_env(
    environ: Optional[Mapping[str, str]] = None,
) -> Tuple[EnvSettings, List[str]]:
    """Read and validate the variables; returns the settings and one message per bad value."""
    env = os.environ if environ is None else environ
    problems: List[str] = []

    def bad(name: str, value: str, accepted: str) -> None:
        problems.append(
            f"handletrace: ignoring {name}={value!r}: expected {accepted}; using the default"
        )

    flag = env.get(ENV_ENABLE, "")
    switch = parse_switch(flag, empty=False)
    enabled = bool(switch)
    if switch is None:
        bad(ENV_ENABLE, flag, SWITCH_WORDS)

    depth = DEFAULT_STACK_DEPTH
    raw: Optional[str] = env.get(ENV_STACK_DEPTH)
    if raw is not None:
        parsed = _parse_int(raw, 0, MAX_STACK_DEPTH)
        if parsed is None:
            bad(ENV_STACK_DEPTH, raw, f"an integer from 0 to {MAX_STACK_DEPTH}")
        else:
            depth = parsed

    sample = 1
    raw = env.get(ENV_STACK_SAMPLE)
    if raw is not None:
        parsed = _parse_int(raw, 0, None)
        if parsed is None:
            bad(ENV_STACK_SAMPLE, raw, "1 (every handle), N > 1 (one in N) or 0 (no stacks)")
        else:
            sample = parsed

    kinds: Optional[FrozenSet[str]] = None
    raw = env.get(ENV_KINDS)
    if raw is not None and raw.strip().lower() not in ("", "all"):
        names = [part.strip() for part in raw.split(",")]
        if all(name.replace("_", "").isalnum() for name in names):
            kinds = frozenset(names)
        else:
            bad(
                ENV_KINDS, raw, "comma-separated kind names such as recognizer,property_bag, or all"
            )

    report = "stderr"
    raw = env.get(ENV_REPORT)
    if raw is not None:
        if raw.strip() == "":
            bad(ENV_REPORT, raw, "stderr, stdout, none, or a file path")
        else:
            report = raw.strip()

    fmt = format_for_path(report, REPORT_FORMATS)
    raw = env.get(ENV_REPORT_FORMAT)
    if raw is not None:
        if raw.strip().lower() in REPORT_FORMATS:
            fmt = raw.strip().lower()
        else:
            bad(ENV_REPORT_FORMAT, raw, "text, json or html")

    metrics = "none"
    raw = env.get(ENV_METRICS)
    if raw is not None:
        if raw.strip().lower() in ("otel", "none", ""):
            metrics = raw.strip().lower() or "none"
        else:
            bad(ENV_METRICS, raw, "otel or none")

    stale_after: Optional[float] = None
    raw = env.get(ENV_STALE_AFTER)
    if raw is not None:
        seconds = _parse_seconds(raw)
        if seconds is None:
            bad(ENV_STALE_AFTER, raw, "a number of seconds greater than 0, such as 300 or 2.5")
        else:
            stale_after = seconds

    settings = EnvSettings(enabled, depth, sample, kinds, report, fmt, metrics, stale_after)
    return settings, problems


def write_report(
    destination: str, report_format: str, *, stale_after: Optional[float] = None
) -> None:
    """Write the report to ``stderr``, ``stdout`` or a file path (``none`` writes nothing).

    ``stale_after``: seconds after which a still-referenced handle is classified ``stale``.
    """
    from ._api import report  # here, not at import: start-up loads no report code

    where = destination.lower()
    if where == "none":
        return
    if where in ("stderr", "stdout"):
        stream = sys.stderr if where == "stderr" else sys.stdout
        if stream is not None:
            report(stream, report_format, stale_after=stale_after)
        return
    with open(destination, "w", encoding="utf-8") as out:
        report(out, report_format, stale_after=stale_after)


def _report_at_exit(
    destination: str, report_format: str, stale_after: Optional[float] = None
) -> None:
    try:
        write_report(destination, report_format, stale_after=stale_after)
    except Exception as exc:  # never turn a clean exit into a traceback
        try:
            sys.stderr.write(
                f"handletrace: could not write the report to {destination}: "
                f"{type(exc).__name__}: {exc}\n"
            )
        except Exception:
            pass


def activate(settings: EnvSettings, *, report_at_exit: bool = True) -> bool:
    """Install with ``settings`` and (once) register the at-exit report."""
    installed = install(
        stack_depth=settings.stack_depth,
        stack_sample=settings.stack_sample,
        kinds=settings.kinds,
    )
    if report_at_exit and TRACKER.at_exit is None:
        hook: Callable[[], None] = lambda: _report_at_exit(  # noqa: E731
            settings.report, settings.report_format, settings.stale_after
        )
        TRACKER.at_exit = hook
        atexit.register(hook)
    if settings.metrics == "otel":
        _enable_metrics()
    return installed


def _enable_metrics() -> None:
    """``HANDLETRACE_METRICS=otel``: metrics on the global meter provider (a proxy until the
    application or ``opentelemetry-instrument`` sets one); a missing OpenTelemetry warns."""
    try:
        from .metrics import enable

        enable()
    except Exception as exc:  # tracking is on: a metrics failure must not look like it is not
        reason = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
        warnings.warn(
            f"handletrace: {ENV_METRICS}=otel ignored: {reason}", HandleTraceWarning, stacklevel=3
        )


def activate_from_env(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Activate tracking if ``HANDLETRACE`` asks for it; warn once per invalid value."""
    settings, problems = settings_from_env(environ)
    for message in problems:
        warnings.warn(message, HandleTraceWarning, stacklevel=2)
    if not settings.enabled:
        return False
    return activate(settings)
