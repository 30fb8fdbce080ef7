"""The ``HANDLETRACE_*`` environment variables: activation (``HANDLETRACE=1``), the
at-exit report, and the settings every front end reads.

Every variable is declared here with what it accepts (the three that ``install()`` reads
itself, in ``_instrument/environ.py``). The settings apply wherever tracking starts:
``HANDLETRACE=1``, ``handletrace run`` (its options win) and the pytest plugin (its command
line wins); ``install()`` takes stack depth, sampling and kinds from them for the arguments
it is not given. An invalid value produces one :class:`HandleTraceWarning` naming the
variable, the value and what is accepted (once per process); the default is used and the
program runs on.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import sys
import warnings
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Callable, FrozenSet, List, Mapping, Optional, Tuple

from ._core.config import DEFAULT_STACK_DEPTH, SWITCH_WORDS, format_for_path, parse_switch
from ._core.state import TRACKER
from ._instrument.environ import (
    ENV_KINDS,
    ENV_STACK_DEPTH,
    ENV_STACK_SAMPLE,
    ignoring,
    tracking_from_env,
    warn_once,
)
from .errors import HandleTraceWarning

if TYPE_CHECKING:
    from ._report.model import Report

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
    "PID_PLACEHOLDER",
    "ReportPathRefused",
    "activate",
    "activate_from_env",
    "report_from_env_at_exit",
    "enable_metrics",
    "parse_seconds",
    "read_settings",
    "report_path",
    "settings_from_env",
    "started_by_multiprocessing",
    "warn_once",
    "write_report",
    "write_report_file",
]

#: ``1``/``true``/``yes``/``on`` to track from interpreter start; ``0``/``false``/``no``/``off``.
ENV_ENABLE = "HANDLETRACE"
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

#: What each variable accepts, for messages (the pytest plugin's too).
ACCEPTED_REPORT = "stderr, stdout, none, or a file path"
ACCEPTED_REPORT_FORMAT = "text, json or html"
ACCEPTED_STALE_AFTER = "a number of seconds greater than 0, such as 300 or 2.5"


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


def parse_seconds(value: str) -> Optional[float]:
    """A finite number of seconds greater than 0, or None."""
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds


def settings_from_env(
    environ: Optional[Mapping[str, str]] = None,
) -> Tuple[EnvSettings, List[str]]:
    """Read and validate the variables; returns the settings and one message per bad value."""
    env = os.environ if environ is None else environ
    tracking, problems = tracking_from_env(env)

    def bad(name: str, value: str, accepted: str) -> None:
        problems.append(ignoring(name, value, f"expected {accepted}"))

    depth = tracking.stack_depth if tracking.stack_depth is not None else DEFAULT_STACK_DEPTH
    sample = tracking.stack_sample if tracking.stack_sample is not None else 1

    flag = env.get(ENV_ENABLE, "")
    switch = parse_switch(flag, empty=False)
    enabled = bool(switch)
    if switch is None:
        bad(ENV_ENABLE, flag, SWITCH_WORDS)

    report = "stderr"
    raw = env.get(ENV_REPORT)
    if raw is not None:
        if raw.strip() == "":
            bad(ENV_REPORT, raw, ACCEPTED_REPORT)
        else:
            report = raw.strip()

    fmt = format_for_path(report, REPORT_FORMATS)
    raw = env.get(ENV_REPORT_FORMAT)
    if raw is not None:
        if raw.strip().lower() in REPORT_FORMATS:
            fmt = raw.strip().lower()
        else:
            bad(ENV_REPORT_FORMAT, raw, ACCEPTED_REPORT_FORMAT)

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
        seconds = parse_seconds(raw)
        if seconds is None:
            bad(ENV_STALE_AFTER, raw, ACCEPTED_STALE_AFTER)
        else:
            stale_after = seconds

    kinds = tracking.kinds
    return EnvSettings(enabled, depth, sample, kinds, report, fmt, metrics, stale_after), problems


#: Replaced by the process id in a report file path (``HANDLETRACE_REPORT=leaks-{pid}.json``):
#: each process of a multiprocessing program writes its own report.
PID_PLACEHOLDER = "{pid}"


class ReportPathRefused(OSError):
    """The report path is a symbolic link: it is not followed (the report holds stack traces
    and source lines; a link could send them anywhere)."""


def report_path(destination: str, *, helper: bool = False) -> str:
    """The file a report to ``destination`` goes to in this process: ``{pid}`` replaced by
    the process id; in a process started by multiprocessing (``helper``), a path without
    ``{pid}`` gets ``.<pid>`` before its extension, so it never replaces the report of the
    program that started it."""
    pid = str(os.getpid())
    if PID_PLACEHOLDER in destination:
        return destination.replace(PID_PLACEHOLDER, pid)
    if helper:
        root, extension = os.path.splitext(destination)
        return f"{root}.{pid}{extension}"
    return destination


def started_by_multiprocessing() -> bool:
    """Whether this process was started by ``multiprocessing`` (a spawn or forkserver worker,
    the forkserver itself, its resource tracker) rather than as a program of its own: they
    inherit ``HANDLETRACE=1`` from the program."""
    process = sys.modules.get("multiprocessing.process")
    if process is not None and getattr(process, "_parent_process", None) is not None:
        return True  # a worker: spawn_main() / the forkserver set its parent
    argv = list(getattr(sys, "orig_argv", ()) or _command_line())
    for flag, command in zip(argv, argv[1:]):  # the helpers are started as -c 'from ...'
        if flag == "-c":
            return command.lstrip().startswith("from multiprocessing.")
    return False


def _command_line() -> List[str]:
    """This process's command line before ``sys.orig_argv`` (Python < 3.10): Linux only."""
    try:
        with open("/proc/self/cmdline", "rb") as source:
            raw = source.read()
    except OSError:
        return []
    return [arg.decode("utf-8", "replace") for arg in raw.split(b"\0") if arg]


def write_report(
    destination: str, report_format: str, *, stale_after: Optional[float] = None
) -> Optional[Report]:
    """Write the report to ``stderr``, ``stdout`` or a file path (``none`` writes nothing);
    return its data (``None`` if nothing was written): one build, for any other use of it.

    A file path may hold ``{pid}`` (see ``report_path``). The file is written whole or not
    at all (a temporary file in the same directory, then renamed over the path: a reader
    or another process never sees half a report), readable by its owner only (mode 0600:
    it holds stack traces); a symbolic link at the path is refused (``ReportPathRefused``),
    never followed. ``stale_after``: seconds after which a still-referenced handle is
    classified ``stale``.
    """
    where = destination.lower()
    if where == "none":
        return None
    from ._api import report  # here, not at import: start-up loads no report code

    if where in ("stderr", "stdout"):
        stream = sys.stderr if where == "stderr" else sys.stdout
        if stream is not None:
            return report(stream, report_format, stale_after=stale_after)
        return None
    written: List[Report] = []
    write_report_file(
        report_path(destination, helper=started_by_multiprocessing()),
        lambda out: written.append(report(out, report_format, stale_after=stale_after)),
    )
    return written[0] if written else None


def write_report_file(path: str, write: Callable[[IO[str]], Any]) -> None:
    """Call ``write`` with a new private file beside ``path``, then rename it to ``path``."""
    import tempfile  # here, not at import: activation at start-up loads no more than it needs

    if os.path.islink(path):
        raise ReportPathRefused(
            f"{path} is a symbolic link; handletrace does not follow it (remove the link or "
            f"give {ENV_REPORT} another path)"
        )
    directory, name = os.path.split(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with open(descriptor, "w", encoding="utf-8") as out:  # mkstemp: mode 0600
            write(out)
        # rename() replaces a link made since the check; it never writes through one.
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _report_at_exit(
    destination: str, report_format: str, stale_after: Optional[float] = None
) -> None:
    try:
        if started_by_multiprocessing() and not TRACKER.registry.stats().created:
            return  # a helper process that tracked nothing: its report would say nothing
        write_report(destination, report_format, stale_after=stale_after)
    except ReportPathRefused as exc:
        with contextlib.suppress(Exception):
            sys.stderr.write(f"handletrace: report not written: {exc}\n")
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
    # Imported here: reading the variables (at exit, or HANDLETRACE=off) needs no wrapt.
    from ._instrument.install import install

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
        enable_metrics()
    return installed


def enable_metrics() -> bool:
    """``HANDLETRACE_METRICS=otel``: metrics on the global meter provider (a proxy until the
    application or ``opentelemetry-instrument`` sets one); a missing OpenTelemetry warns.
    ``True`` if this call enabled them."""
    try:
        from .metrics import enable

        return enable()
    except Exception as exc:  # tracking is on: a metrics failure must not look like it is not
        reason = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
        warnings.warn(
            f"handletrace: {ENV_METRICS}=otel ignored: {reason}", HandleTraceWarning, stacklevel=3
        )
        return False


def read_settings(environ: Optional[Mapping[str, str]] = None) -> EnvSettings:
    """The validated settings for a front end that starts tracking (``handletrace run``):
    each invalid value warned once (``HandleTraceWarning``), its default used."""
    settings, problems = settings_from_env(environ)
    warn_once(problems, stacklevel=3)
    return settings


def activate_from_env(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Activate tracking if ``HANDLETRACE`` asks for it; warn once per invalid value."""
    settings, problems = settings_from_env(environ)
    warn_once(problems)
    if not settings.enabled:
        return False
    return activate(settings)


def report_from_env_at_exit(environ: Optional[Mapping[str, str]] = None) -> None:
    """At exit, when the SDK was never imported (``HANDLETRACE=1`` armed at start and nothing
    activated it): warn once per invalid value, then the report ``HANDLETRACE`` asks for
    (it says no handle was made; none is written when the report is ``none``)."""
    settings, problems = settings_from_env(environ)
    warn_once(problems)
    if not settings.enabled or settings.report.lower() == "none":
        return
    activate(settings, report_at_exit=False)
    _report_at_exit(settings.report, settings.report_format, settings.stale_after)
