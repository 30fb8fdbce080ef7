"""pytest plugin: fail the tests that leave native Speech SDK handles alive.

Inert unless asked: installed, it only registers its options, its marker and its fixture.

* ``pytest --handletrace`` checks every test; ``@pytest.mark.handletrace(...)`` checks one
  test (with options); ``@pytest.mark.handletrace(False)`` exempts one.
* The ``handletrace_handles`` fixture gives a test the handles it has created so far.

A checked test fails when native handles it created are still alive after it ended (after
its function-scoped fixtures were torn down). Automatic garbage collection is switched off
while a checked test runs, as native memory never triggers it in production, so a handle
that only the cyclic collector would free is found deterministically instead of by luck.
Only after the check does the plugin run ``gc.collect()``, to tell "cyclic garbage" (freed
by that collection) from "still reachable" in the failure section, and to free them.

What blocked is reported too: the slow native releases and blocking SDK calls recorded while a
checked test ran (``handletrace.blocking()``: releases and event-loop calls of at least
``slow_release``, 0.1 s by default) are its ``handletrace`` section's blocking part, always.
A test fails for them only when asked: with ``max_blocking`` seconds (marker argument,
``--handletrace-max-blocking``, ...), a checked test whose SDK work held an event loop longer
than that in all fails as ``BLOCKED``. The default is no limit: report, do not fail.

Attribution is per test: a test owns the handles created from the start of its setup to the
end of its teardown, except during the setup of fixtures of a wider scope (class, module,
package, session), which belong to no test. A handle created by one test and released in the
next is blamed on the first (it was alive when the first ended).

How (hookwrappers, and the one part that is not): a ``pytest_runtest_protocol`` hookwrapper
opens the test's attribution window and switches GC off around whatever runs the protocol;
a ``pytest_fixture_setup`` hookwrapper cuts the wider-scoped fixtures' setup out of it. The
verdict is known only after the teardown, yet a leak must fail the *call* (``FAILED``/
``LEAKED``, counted once as a failed test), and pytest logs the call's report (progress
letter, counts, ``--lf``, ``-x``, junitxml) before the teardown runs. No hookwrapper can
change a report already logged or delay its logging, so for a checked test
:class:`CheckedProtocol` runs pytest's protocol unlogged (``runtestprotocol(log=False)``,
as pytest-rerunfailures does), applies the verdict and then logs the reports.

Configuration, highest precedence first (house rule 10): marker arguments, command line,
environment, ini file (``pytest.ini``, ``pyproject.toml`` ``[tool.pytest.ini_options]``,
``tox.ini``, ``setup.cfg``), default. An invalid value stops the run with a message naming
the value and where it came from.

==================================  ================================  ==========================
command line                        environment                       ini
==================================  ================================  ==========================
``--handletrace``,                  ``HANDLETRACE_PYTEST=1|0``        ``handletrace = true``
``--no-handletrace``
``--handletrace-allow=KINDS``       ``HANDLETRACE_PYTEST_ALLOW``      ``handletrace_allow``
``--handletrace-stack-depth=N``     ``HANDLETRACE_STACK_DEPTH``       ``handletrace_stack_depth``
``--handletrace-stack-sample=N``    ``HANDLETRACE_STACK_SAMPLE``      ``handletrace_stack_sample``
``--handletrace-kinds=KINDS``       ``HANDLETRACE_KINDS``             ``handletrace_kinds``
``--handletrace-report=DEST``       ``HANDLETRACE_REPORT``            ``handletrace_report``
``--handletrace-max-blocking=S``    ``HANDLETRACE_PYTEST_MAX_BLOCKING`` ``handletrace_max_blocking``
                                    ``HANDLETRACE_REPORT_FORMAT``
                                    ``HANDLETRACE_STALE_AFTER``
==================================  ================================  ==========================

The report (``DEST``: a file path, ``stdout``, ``stderr`` or ``none``) is the report of the
handles still alive when the session ends, written when the plugin tracked handles: it
covers what no test is blamed for (wider-scoped fixtures, module globals).
"""

from __future__ import annotations

import gc
import inspect
import math
import os
import sys
from dataclasses import dataclass, replace
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    Dict,
    FrozenSet,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
)

import pytest

from ._analysis.blocking import sites_since
from ._core.blocking import Blocking, BlockingSite
from ._core.config import (
    DEFAULT_STACK_DEPTH,
    MAX_STACK_DEPTH,
    SWITCH_WORDS,
    format_for_path,
    parse_switch,
)
from ._core.registry import HandleRecord, Stats
from ._core.snapshot import Snapshot
from ._core.state import TRACKER
from ._env import (
    ACCEPTED_REPORT,
    ACCEPTED_REPORT_FORMAT,
    ACCEPTED_STALE_AFTER,
    ENV_REPORT,
    ENV_REPORT_FORMAT,
    ENV_STALE_AFTER,
    REPORT_FORMATS,
    parse_seconds,
)
from ._instrument.environ import (
    ACCEPTED_STACK_DEPTH,
    ACCEPTED_STACK_SAMPLE,
    ENV_KINDS,
    ENV_STACK_DEPTH,
    ENV_STACK_SAMPLE,
    MAX_STACK_SAMPLE,
    parse_count,
)
from ._sdk.blocking import in_flight
from ._sdk.kinds import unknown_kinds_message
from ._sdk.records import live_records

if TYPE_CHECKING:  # imported when a test is judged: an inert plugin loads no report code
    from ._report.model import ReportBlocking

__all__ = [
    "ENV_PYTEST",
    "ENV_PYTEST_ALLOW",
    "ENV_PYTEST_MAX_BLOCKING",
    "FIXTURE",
    "MARKER",
    "CheckedProtocol",
    "CreatedHandles",
    "MarkerOptions",
    "Settings",
    "SettingsError",
    "handletrace",
    "resolve_settings",
]

MARKER = "handletrace"
FIXTURE = "handletrace_handles"
SECTION = "handletrace"
LEAK_PREFIX = "handletrace: "
#: How the failure of a test that blocked its event loop too long begins.
BLOCKED_PREFIX = "handletrace: event loop blocked"

#: ``1``/``true``/``yes``/``on`` to check every test, ``0``/``false``/``no``/``off`` not to.
ENV_PYTEST = "HANDLETRACE_PYTEST"
#: Comma-separated handle kinds that may outlive a test (e.g. ``speech_config``).
ENV_PYTEST_ALLOW = "HANDLETRACE_PYTEST_ALLOW"
#: Seconds a checked test's SDK work may hold an event loop (in all) before the test fails.
ENV_PYTEST_MAX_BLOCKING = "HANDLETRACE_PYTEST_MAX_BLOCKING"
ACCEPTED_MAX_BLOCKING = "a number of seconds of 0 or more, such as 0.5"
# Shared with every front end (_env, _instrument/environ): HANDLETRACE_STACK_DEPTH,
# HANDLETRACE_STACK_SAMPLE, HANDLETRACE_KINDS, HANDLETRACE_REPORT, HANDLETRACE_REPORT_FORMAT,
# HANDLETRACE_STALE_AFTER.

_WIDER_SCOPES = frozenset({"class", "module", "package", "session"})

MANAGER_KEY = pytest.StashKey["Manager"]()
MARKER_OPTIONS_KEY = pytest.StashKey["Optional[MarkerOptions]"]()


# -- settings ----------------------------------------------------------------------------


class SettingsError(ValueError):
    """One or more configuration values are invalid (each line says which and where)."""


@dataclass(frozen=True)
class Settings:
    """The session-wide configuration, after resolution and validation."""

    enabled: bool = False
    allow: FrozenSet[str] = frozenset()
    stack_depth: int = DEFAULT_STACK_DEPTH
    stack_sample: int = 1
    kinds: Optional[FrozenSet[str]] = None  #: kinds tracked; ``None``: every kind
    report: Optional[str] = None  #: where the session report goes; ``None``: nowhere
    report_format: Optional[str] = None  #: ``None``: from the report path's extension
    stale_after: Optional[float] = None
    #: Seconds a checked test's SDK work may block its event loop; ``None``: no limit.
    max_blocking: Optional[float] = None


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    switch = parse_switch(str(value))
    if switch is None:
        raise ValueError(f"expected {SWITCH_WORDS}")
    return switch


def _kind_names(value: Any) -> FrozenSet[str]:
    items = [value] if isinstance(value, str) else list(value)
    names = {part.strip() for item in items for part in str(item).replace(",", " ").split()}
    names.discard("")
    return frozenset(names)


def _parse_kinds(value: Any) -> FrozenSet[str]:
    names = _kind_names(value)
    problem = unknown_kinds_message(names)
    if problem is not None:
        raise ValueError(problem)
    return names


def _parse_tracked_kinds(value: Any) -> Optional[FrozenSet[str]]:
    names = _kind_names(value)
    if {name.lower() for name in names} == {"all"}:
        return None
    return _parse_kinds(names)


def _parse_depth(value: Any) -> int:
    number = parse_count(str(value), MAX_STACK_DEPTH)
    if number is None:
        raise ValueError(f"expected {ACCEPTED_STACK_DEPTH}")
    return number


def _parse_sample(value: Any) -> int:
    number = parse_count(str(value), MAX_STACK_SAMPLE)
    if number is None:
        raise ValueError(f"expected {ACCEPTED_STACK_SAMPLE}")
    return number


def _parse_report(value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError(f"expected {ACCEPTED_REPORT}")
    return text.lower() if text.lower() in ("stderr", "stdout", "none") else text


def _parse_format(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in REPORT_FORMATS:
        raise ValueError(f"expected {ACCEPTED_REPORT_FORMAT}")
    return text


def _max_blocking(value: Any) -> Optional[float]:
    """``value`` as seconds of blocking allowed (a finite number >= 0), or ``None``."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _parse_max_blocking(value: Any) -> float:
    seconds = _max_blocking(value)
    if seconds is None:
        raise ValueError(f"expected {ACCEPTED_MAX_BLOCKING}")
    return seconds


def _parse_stale(value: Any) -> float:
    seconds = parse_seconds(str(value))
    if seconds is None:
        raise ValueError(f"expected {ACCEPTED_STALE_AFTER}")
    return seconds


_SETTINGS = (
    # field, parser, command-line option, environment variable, ini name (None: none)
    ("enabled", _parse_bool, "--handletrace", ENV_PYTEST, "handletrace"),
    ("allow", _parse_kinds, "--handletrace-allow", ENV_PYTEST_ALLOW, "handletrace_allow"),
    (
        "stack_depth",
        _parse_depth,
        "--handletrace-stack-depth",
        ENV_STACK_DEPTH,
        "handletrace_stack_depth",
    ),
    (
        "stack_sample",
        _parse_sample,
        "--handletrace-stack-sample",
        ENV_STACK_SAMPLE,
        "handletrace_stack_sample",
    ),
    ("kinds", _parse_tracked_kinds, "--handletrace-kinds", ENV_KINDS, "handletrace_kinds"),
    ("report", _parse_report, "--handletrace-report", ENV_REPORT, "handletrace_report"),
    (
        "max_blocking",
        _parse_max_blocking,
        "--handletrace-max-blocking",
        ENV_PYTEST_MAX_BLOCKING,
        "handletrace_max_blocking",
    ),
    ("report_format", _parse_format, None, ENV_REPORT_FORMAT, None),
    ("stale_after", _parse_stale, None, ENV_STALE_AFTER, None),
)
#: Field -> the ini name of the settings with a command-line option and an ini name (the
#: ini name is also the option's ``dest``: ``--handletrace-allow`` -> ``handletrace_allow``).
OPTION_NAMES = {field: ini for field, _, option, _, ini in _SETTINGS if option and ini}


def resolve_settings(
    cli: Mapping[str, Any],
    ini: Mapping[str, Any],
    environ: Optional[Mapping[str, str]] = None,
    *,
    ini_file: str = "the ini file",
) -> Settings:
    """Resolve every setting: command line, then environment, then ini, then the default.

    ``cli`` and ``ini`` map field names to raw values (``None``/missing: not given). Every
    value given is validated, even one that a higher source overrides; all problems are
    raised together as one :class:`SettingsError`.
    """
    env = os.environ if environ is None else environ
    chosen: Dict[str, Any] = {}
    problems: List[str] = []
    for name, parse, option, variable, ini_name in _SETTINGS:
        sources = (
            (cli.get(name) if option else None, f"command line option {option}"),
            (env.get(variable), f"environment variable {variable}"),
            (ini.get(name) if ini_name else None, f"ini option {ini_name} in {ini_file}"),
        )
        for raw, where in sources:
            if raw is None or (isinstance(raw, (str, list)) and not raw and name != "allow"):
                continue
            try:
                value = parse(raw)
            except ValueError as exc:
                problems.append(f"handletrace: invalid value {raw!r} from {where}: {exc}")
                continue
            chosen.setdefault(name, value)
    if problems:
        raise SettingsError("\n".join(problems))
    return Settings(**chosen)


# -- marker --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkerOptions:
    """What ``@pytest.mark.handletrace(...)`` asks for one test."""

    enabled: bool = True
    allow: Optional[FrozenSet[str]] = None  #: ``None``: the session's allowed kinds
    max_leaks: int = 0
    allow_cycles: bool = False
    #: ``None``: the session's ``max_blocking``.
    max_blocking: Optional[float] = None


def handletrace(
    enabled: bool = True,
    *,
    allow: Optional[Iterable[str]] = None,
    max_leaks: int = 0,
    allow_cycles: bool = False,
    max_blocking: Optional[float] = None,
) -> MarkerOptions:
    """check this test for native Speech SDK handles it leaves alive (also without --handletrace). enabled=False exempts the test from --handletrace; allow: handle kinds that may outlive it (replaces --handletrace-allow); max_leaks: how many other handles may; allow_cycles=True accepts handles that only the cyclic garbage collector frees; max_blocking: seconds its SDK work may block its event loop (replaces --handletrace-max-blocking; default: no limit)."""  # noqa: E501
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    if not isinstance(max_leaks, int) or isinstance(max_leaks, bool) or max_leaks < 0:
        raise ValueError(f"max_leaks must be an integer >= 0, got {max_leaks!r}")
    if not isinstance(allow_cycles, bool):
        raise TypeError(f"allow_cycles must be True or False, got {allow_cycles!r}")
    if max_blocking is not None and (
        isinstance(max_blocking, str) or _max_blocking(max_blocking) is None
    ):
        raise ValueError(
            f"max_blocking must be None or {ACCEPTED_MAX_BLOCKING}, got {max_blocking!r}"
        )
    kinds = None if allow is None else _parse_kinds(allow)
    limit = None if max_blocking is None else float(max_blocking)
    return MarkerOptions(enabled, kinds, max_leaks, allow_cycles, limit)


def _marker_help() -> str:
    parts = []
    star = False
    for p in inspect.signature(handletrace).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        parts.append(f"{p.name}={p.default!r}")
    return f"{MARKER}({', '.join(parts)}): {handletrace.__doc__}"


def marker_options(item: pytest.Item) -> Optional[MarkerOptions]:
    """The item's marker options (validated at collection), ``None`` without a marker."""
    if MARKER_OPTIONS_KEY in item.stash:
        return item.stash[MARKER_OPTIONS_KEY]
    marker = item.get_closest_marker(MARKER)
    options = None if marker is None else handletrace(*marker.args, **marker.kwargs)
    item.stash[MARKER_OPTIONS_KEY] = options
    return options


# -- attribution ---------------------------------------------------------------------------


class _Window:
    """Which sequence numbers belong to the running test.

    Those above ``start`` (and up to ``end`` once it ended), except the ranges created while
    fixtures of a wider scope were being set up. Only integers: nothing here keeps a handle
    alive. ``blocking_before``: the blocking record's sites when the test began (what it
    gained by the end is the test's: plain data, stacks of code objects, no SDK object).
    """

    __slots__ = ("start", "end", "excluded", "nodeid", "blocking_before")

    def __init__(
        self, start: int, nodeid: str, blocking_before: Tuple[BlockingSite, ...] = ()
    ) -> None:
        self.start = start
        self.end: Optional[int] = None
        self.excluded: List[Tuple[int, int]] = []
        self.nodeid = nodeid
        self.blocking_before = blocking_before

    def owns(self, seq: int) -> bool:
        if seq <= self.start or (self.end is not None and seq > self.end):
            return False
        return not any(low < seq <= high for low, high in self.excluded)

    def created(self) -> int:
        """How many tracked handles the test created (its sequence numbers)."""
        end = self.end if self.end is not None else TRACKER.registry.last_seq()
        total = end - self.start
        merged: List[Tuple[int, int]] = []
        for low, high in sorted(self.excluded):
            if merged and low <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], high))
            else:
                merged.append((low, high))
        return total - sum(min(high, end) - max(low, self.start) for low, high in merged)

    def live_records(self) -> List[HandleRecord]:
        if self.created() == 0:  # the common case: skip copying every live record
            return []
        return live_records(TRACKER.registry, select=self.owns)


class CreatedHandles:
    """The native handles the running test has created (its function-scoped fixtures
    included, wider-scoped fixtures excluded), read live from the registry."""

    def __init__(self, window: _Window) -> None:
        self._window = window

    def snapshot(self) -> Snapshot:
        """The test's handles that are alive now, in creation order."""
        return Snapshot.of(self._window.live_records(), TRACKER.registry.stats())

    def count(self, kind: Optional[str] = None) -> int:
        """How many of the test's handles (of ``kind``) are alive now."""
        return sum(1 for r in self._window.live_records() if kind is None or r.kind == kind)

    def count_by_kind(self) -> Dict[str, int]:
        return self.snapshot().count_by_kind()

    def report(self, file: Optional[IO[str]] = None, format: str = "text") -> Any:
        """Write the report of the test's live handles (like ``handletrace.report()``)."""
        from ._api import report

        return report(file, format, snapshot=self.snapshot())

    def __repr__(self) -> str:
        return f"<CreatedHandles of {self._window.nodeid}: {self.count()} alive>"


# -- the verdict ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the check found for one test (plain data: no record, no handle)."""

    failed: bool  #: the test fails for a leak or for blocking its event loop too long
    leaked: int  #: handles alive when the test ended (not counting allowed kinds)
    cyclic: int  #: of those, how many ``gc.collect()`` then freed
    headline: str
    text: str  #: the report for the failure section ("": nothing to report)
    leak_failed: bool = False  #: its leaks are more than it may leave
    #: Seconds its SDK work held an event loop (recorded releases and calls).
    blocked: float = 0.0
    blocking_failed: bool = False  #: more than ``max_blocking``
    limited: bool = False  #: a ``max_blocking`` applied


@dataclass(frozen=True)
class _LeakCheck:
    failed: bool
    leaked: int
    cyclic: int
    headline: str
    text: str


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _pytest_dirs() -> Tuple[str, ...]:
    import _pytest
    import pluggy

    from ._frontend import module_dir

    return (module_dir(_pytest), module_dir(pluggy), module_dir(pytest), module_dir(_check))


def _test_blocking(window: _Window, records: List[HandleRecord]) -> Optional[ReportBlocking]:
    """The test's blocking section (a ``ReportBlocking``): what the blocking record gained
    while it ran, and the releases of its handles still in flight; ``None`` if nothing."""
    from ._report.model import make_blocking

    log = TRACKER.blocking
    sites = sites_since(window.blocking_before, log.sites(), log.events())
    releasing = [flight for seq, flight in in_flight(TRACKER).items() if window.owns(seq)]
    if not sites and not releasing:
        return None
    releasing.sort(key=lambda flight: -flight.elapsed)
    blocking = Blocking(tuple(releasing), sites, (), TRACKER.config.slow_release)
    return make_blocking(blocking, records)


def _check(
    window: _Window,
    allow: FrozenSet[str],
    options: MarkerOptions,
    blocking: Optional[ReportBlocking],
) -> Optional[_LeakCheck]:
    """Compare what the test left alive with what it may; ``None`` when nothing is left.
    ``blocking``: the test's blocking section, put in its report."""
    from ._api import build_report
    from ._frontend import collect_and_split, trim_frames
    from ._report.text import format_text

    registry = TRACKER.registry
    # Releases in flight first: a record listed after its release began is still live.
    releasing = {seq: f for seq, f in in_flight(TRACKER).items() if window.owns(seq)}
    alive = window.live_records()
    suspects = [r for r in alive if r.kind not in allow]
    if not suspects:
        return None
    created = window.created()
    stats = Stats(
        kinds={},
        released_by_cause={},
        instrumentation_errors=registry.stats().instrumentation_errors,
        created=created,
        released=max(0, created - len(alive)),
        live=len(suspects),
    )
    # Build the report while the leaked objects still exist (the diagnosis looks at them).
    data = trim_frames(build_report(Snapshot.of(suspects, stats, releasing)), _pytest_dirs())
    seqs = [r.seq for r in suspects]
    del alive, suspects
    data, collected = collect_and_split(data, seqs)
    counted = collected.reachable if options.allow_cycles else collected.checked
    notes = [
        "these handles were created by this test (its function-scoped fixtures included) and "
        "were still alive after its teardown; automatic garbage collection was off during the test",
    ]
    if allow:
        notes.append(f"kinds allowed to outlive the test, not counted: {', '.join(sorted(allow))}")
    # The test's own blocking, not the whole session's.
    data = replace(data, notes=(*notes, *data.notes), blocking=blocking)
    what = []
    if collected.cyclic:
        what.append(f"{collected.cyclic} cyclic garbage")
    if collected.reachable:
        what.append(f"{collected.reachable} still reachable")
    n = collected.checked
    headline = (
        f"{LEAK_PREFIX}{_plural(n, 'native handle')} created by this test "
        f"{'is' if n == 1 else 'are'} still alive after it ended ({', '.join(what)})"
    )
    return _LeakCheck(
        failed=counted > options.max_leaks,
        leaked=n,
        cyclic=collected.cyclic,
        headline=headline,
        text=format_text(data),
    )


def _judge(
    window: _Window, allow: FrozenSet[str], options: MarkerOptions, max_blocking: Optional[float]
) -> Optional[Verdict]:
    """The test's verdict: its leaks, and what its SDK work blocked (``max_blocking``:
    seconds it may hold an event loop; ``None``: no limit); ``None`` when there is nothing
    to say."""
    from ._report.text import blocking_lines

    window.end = TRACKER.registry.last_seq()
    blocking = _test_blocking(window, window.live_records())
    leak = _check(window, allow, options, blocking)
    if leak is None and blocking is None:
        return None
    blocked = blocking.event_loop if blocking is not None else 0.0
    blocking_failed = max_blocking is not None and blocked > max_blocking and blocked > 0
    # A leak's report has the test's blocking section in it.
    if leak is not None:
        text = leak.text
    else:
        assert blocking is not None
        text = "\n".join(blocking_lines(blocking)) + "\n"
    headline = leak.headline if leak is not None and leak.failed else ""
    if blocking_failed and not headline:
        headline = (
            f"{BLOCKED_PREFIX} {blocked:.2f} s by this test's SDK work (more than "
            f"max_blocking={max_blocking:g} s): see the blocking part of the handletrace section"
        )
    return Verdict(
        failed=(leak is not None and leak.failed) or blocking_failed,
        leaked=leak.leaked if leak is not None else 0,
        cyclic=leak.cyclic if leak is not None else 0,
        headline=headline,
        text=text,
        leak_failed=leak is not None and leak.failed,
        blocked=blocked,
        blocking_failed=blocking_failed,
        limited=max_blocking is not None,
    )


def is_blocked_report(report: Any) -> bool:
    """Whether ``report`` is a call report that failed because the test's SDK work blocked
    its event loop longer than ``max_blocking`` (and leaked nothing)."""
    return (
        getattr(report, "when", None) == "call"
        and report.failed
        and isinstance(report.longrepr, str)
        and report.longrepr.startswith(BLOCKED_PREFIX)
    )


def is_leak_report(report: Any) -> bool:
    """Whether ``report`` is a call report that failed because of a leak found by the plugin."""
    return (
        getattr(report, "when", None) == "call"
        and report.failed
        and isinstance(report.longrepr, str)
        and report.longrepr.startswith(LEAK_PREFIX)
        and not report.longrepr.startswith(BLOCKED_PREFIX)
    )


# -- the manager ---------------------------------------------------------------------------


class Manager:
    """All plugin state for one pytest session (registered in ``pytest_configure``)."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.installed_by_us = False
        self.unsupported = False
        self.current: Optional[_Window] = None
        #: The options the running test is checked with (``None``: it is not checked).
        self.current_options: Optional[MarkerOptions] = None
        self.checked = 0
        self.leaks: List[Tuple[str, int, int]] = []  # (nodeid, handles, cyclic): text only
        #: (nodeid, seconds, failed, a limit applied) of the tests whose SDK work blocked an
        #: event loop.
        self.blocked: List[Tuple[str, float, bool, bool]] = []

    # -- tracking ------------------------------------------------------------------------
    def ensure_installed(self) -> bool:
        if TRACKER.installed:
            return True
        if self.unsupported:
            return False
        from ._instrument.install import install

        settings = self.settings
        # kinds=None: every kind (the environment's HANDLETRACE_KINDS was resolved above).
        if install(
            stack_depth=settings.stack_depth,
            stack_sample=settings.stack_sample,
            kinds=settings.kinds,
        ):
            self.installed_by_us = True
            return True
        self.unsupported = True
        return False

    def options_for(self, item: pytest.Item) -> Optional[MarkerOptions]:
        """The options to check ``item`` with, or ``None`` if it is not checked."""
        options = marker_options(item)
        if options is None:
            return MarkerOptions() if self.settings.enabled else None
        return options if options.enabled else None

    # -- hooks ---------------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Optional[pytest.Item]) -> Any:
        """Around the protocol of a checked test, or of one using the fixture (whoever runs
        it): the attribution window, and automatic GC off for a checked test."""
        options = self.options_for(item)
        watched = options is not None or FIXTURE in getattr(item, "fixturenames", ())
        if not watched or not self.ensure_installed():
            yield
            return
        # The blocking record's sites now, only for a checked test (a copy and a sort).
        before = TRACKER.blocking.sites() if options is not None else ()
        self.current = _Window(TRACKER.registry.last_seq(), item.nodeid, before)
        self.current_options = options
        gc_was_enabled = gc.isenabled()
        if options is not None:
            gc.disable()
        try:
            yield
        finally:
            # Pop rather than get: the window (integers only) goes with the test.
            self.current = self.current_options = None
            if gc_was_enabled:
                gc.enable()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Iterator[None]:
        window = self.current
        if window is None or fixturedef.scope not in _WIDER_SCOPES:
            yield
            return
        registry = TRACKER.registry
        before = registry.last_seq()
        try:
            yield
        finally:
            after = registry.last_seq()
            if after > before:
                window.excluded.append((before, after))

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: List[pytest.Item]
    ) -> None:
        for item in items:
            try:
                marker_options(item)
            except (TypeError, ValueError) as exc:
                raise pytest.UsageError(
                    f"handletrace: invalid @pytest.mark.{MARKER}(...) on {item.nodeid}: {exc}"
                ) from None

    def verdict(
        self, window: _Window, options: MarkerOptions, reports: List[pytest.TestReport]
    ) -> Optional[Verdict]:
        self.checked += 1
        call = next((r for r in reports if r.when == "call"), None)
        if call is None or call.skipped or hasattr(call, "wasxfail"):
            return None  # setup failed, skipped or xfail: nothing to judge
        allow = options.allow if options.allow is not None else self.settings.allow
        limit = options.max_blocking
        if limit is None:
            limit = self.settings.max_blocking
        return _judge(window, allow, options, limit)

    def apply(self, verdict: Verdict, item: pytest.Item, reports: List[pytest.TestReport]) -> None:
        call = next(r for r in reports if r.when == "call")
        if verdict.leak_failed:
            self.leaks.append((item.nodeid, verdict.leaked, verdict.cyclic))
        if verdict.blocked:
            self.blocked.append(
                (item.nodeid, verdict.blocked, verdict.blocking_failed, verdict.limited)
            )
        if call.passed and verdict.failed:
            call.outcome = "failed"
            call.longrepr = verdict.headline
            call.sections.append((SECTION, verdict.text))
        elif call.failed and verdict.leaked:
            call.sections.append(
                (
                    SECTION,
                    verdict.text
                    + "note: the test failed; its traceback keeps its local variables alive, "
                    "so some of these handles may be held only by that\n",
                )
            )
        else:  # what blocked, beside any failure of its own (or shown by -rP)
            call.sections.append((SECTION, verdict.text))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_report_teststatus(self, report: Any, config: pytest.Config) -> Iterator[Any]:
        outcome: Any = yield
        if is_leak_report(report):
            outcome.force_result(("failed", "L", ("LEAKED", {"red": True})))
        elif is_blocked_report(report):
            outcome.force_result(("failed", "B", ("BLOCKED", {"red": True})))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.unsupported:
            terminalreporter.write_line(
                "handletrace: this azure-cognitiveservices-speech release is not supported; "
                "no handle was tracked",
                yellow=True,
            )
        if self.leaks:
            terminalreporter.write_sep(
                "=",
                f"handletrace: {_plural(len(self.leaks), 'test')} leaked native handles",
                red=True,
            )
            for nodeid, handles, cyclic in self.leaks:
                extra = f" ({cyclic} cyclic garbage)" if cyclic else ""
                terminalreporter.write_line(f"{nodeid}: {_plural(handles, 'handle')}{extra}")
        elif self.settings.enabled and self.checked:
            terminalreporter.write_line(
                f"handletrace: {_plural(self.checked, 'test')} checked, no native handle leaked"
            )
        self.blocking_summary(terminalreporter)

    def blocking_summary(self, terminalreporter: Any) -> None:
        """The tests whose SDK work blocked an event loop: those failed for it, or one line
        saying how to fail them."""
        failed = [(nodeid, seconds) for nodeid, seconds, over, _ in self.blocked if over]
        if failed:
            its = "its" if len(failed) == 1 else "their"
            terminalreporter.write_sep(
                "=",
                f"handletrace: {_plural(len(failed), 'test')} blocked {its} event loop longer "
                "than max_blocking",
                red=True,
            )
            for nodeid, seconds in failed:
                terminalreporter.write_line(f"{nodeid}: {seconds:.2f} s")
        within = [seconds for _, seconds, over, limited in self.blocked if limited and not over]
        unlimited = [seconds for _, seconds, _, limited in self.blocked if not limited]
        if within:
            terminalreporter.write_line(
                f"handletrace: the SDK work of {_plural(len(within), 'test')} blocked an event "
                f"loop within max_blocking ({sum(within):.2f} s in all)"
            )
        if unlimited:
            terminalreporter.write_line(
                f"handletrace: the SDK work of {_plural(len(unlimited), 'test')} blocked an "
                f"event loop ({sum(unlimited):.2f} s in all; see the handletrace section with "
                "-rA, fail such tests with --handletrace-max-blocking=SECONDS)",
                yellow=True,
            )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.write_session_report()
        if self.installed_by_us:
            from ._instrument.install import uninstall

            uninstall()
            self.installed_by_us = False

    def write_session_report(self) -> None:
        """The report of the handles alive at the end of the session, where ``report`` says,
        if handles were tracked (under ``HANDLETRACE=1`` its at-exit report does this)."""
        destination = self.settings.report
        if destination in (None, "none") or not TRACKER.installed or TRACKER.at_exit is not None:
            return
        from ._env import write_report

        fmt = self.settings.report_format or format_for_path(destination, REPORT_FORMATS)
        try:
            write_report(destination, fmt, stale_after=self.settings.stale_after)
        except OSError as exc:  # the tests ran: say so, without a traceback
            sys.stderr.write(f"handletrace: could not write the report to {destination}: {exc}\n")


class CheckedProtocol:
    """Runs a checked test's protocol: the one part not done with hookwrappers.

    The verdict is known after the teardown (function-scoped fixtures may release handles
    there), but a leak fails the call, and pytest logs each phase's report as soon as it is
    made: a hookwrapper could only fail the teardown report (``ERROR at teardown``, the
    test counted as passed and errored). So the phases run unlogged, as in
    pytest-rerunfailures, and their reports are logged once the verdict is applied. A
    plugin that runs the protocol of the same test itself may not combine with this.
    """

    def __init__(self, manager: Manager) -> None:
        self.manager = manager

    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Optional[pytest.Item]) -> Any:
        manager = self.manager
        window, options = manager.current, manager.current_options
        if window is None or options is None or window.nodeid != item.nodeid:
            return None  # not checked: pytest's own protocol runs it
        from _pytest.runner import runtestprotocol

        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        verdict = manager.verdict(window, options, reports)
        if verdict is not None:
            manager.apply(verdict, item, reports)
        for report in reports:
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True


# -- module-level hooks ----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("handletrace", "native handle leak checks (handletrace)")
    group.addoption(
        "--handletrace",
        action="store_true",
        default=None,
        dest="handletrace",
        help="fail every test that leaves native Speech SDK handles alive after it ends "
        f"(or that only the cyclic GC frees). Environment: {ENV_PYTEST}=1.",
    )
    group.addoption(
        "--no-handletrace",
        action="store_false",
        dest="handletrace",
        help="do not check every test (overrides the environment and ini); "
        "marked tests are still checked.",
    )
    group.addoption(
        "--handletrace-allow",
        metavar="KINDS",
        default=None,
        help="comma-separated handle kinds that may outlive a test, e.g. speech_config. "
        f"Environment: {ENV_PYTEST_ALLOW}.",
    )
    group.addoption(
        "--handletrace-stack-depth",
        metavar="N",
        default=None,
        help=f"frames kept per creation stack (0-{MAX_STACK_DEPTH}, default "
        f"{DEFAULT_STACK_DEPTH}). Environment: {ENV_STACK_DEPTH}.",
    )
    group.addoption(
        "--handletrace-stack-sample",
        metavar="N",
        default=None,
        help="capture a creation stack for every handle (1, default), one in N, or none (0). "
        f"Environment: {ENV_STACK_SAMPLE}.",
    )
    group.addoption(
        "--handletrace-kinds",
        metavar="KINDS",
        default=None,
        help="only track these comma-separated handle kinds (default: all). "
        f"Environment: {ENV_KINDS}.",
    )
    group.addoption(
        "--handletrace-max-blocking",
        metavar="SECONDS",
        default=None,
        help="fail a checked test whose SDK work (slow native releases, synchronous SDK "
        "calls) blocked its event loop longer than SECONDS in all (0: at all); default: "
        f"report it, never fail. Environment: {ENV_PYTEST_MAX_BLOCKING}.",
    )
    group.addoption(
        "--handletrace-report",
        metavar="DEST",
        default=None,
        help="write the report of the handles still alive when the session ends to DEST "
        "(a .json/.html/text file, stdout or stderr). "
        f"Environment: {ENV_REPORT} (format: {ENV_REPORT_FORMAT}).",
    )
    parser.addini(
        "handletrace", "check every test for native handle leaks (true/false)", default=""
    )
    parser.addini(
        "handletrace_allow", "handle kinds that may outlive a test", type="args", default=[]
    )
    parser.addini("handletrace_stack_depth", "frames kept per creation stack (0-256)", default="")
    parser.addini(
        "handletrace_stack_sample", "a creation stack for one handle in N (0: none)", default=""
    )
    parser.addini(
        "handletrace_kinds", "handle kinds to track (default: all)", type="args", default=[]
    )
    parser.addini(
        "handletrace_report", "where the report of the session's end goes", default=""
    )
    parser.addini(
        "handletrace_max_blocking",
        "seconds a checked test's SDK work may block its event loop (default: no limit)",
        default="",
    )


def _ini_value(config: pytest.Config, name: str) -> Any:
    try:
        value = config.getini(name)
    except ValueError:
        return None
    return value if value not in ("", []) else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _marker_help())
    inifile = str(config.inipath) if config.inipath else "the ini file"
    try:
        settings = resolve_settings(
            {field: config.getoption(name) for field, name in OPTION_NAMES.items()},
            {field: _ini_value(config, name) for field, name in OPTION_NAMES.items()},
            ini_file=inifile,
        )
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    manager = Manager(config, settings)
    config.stash[MANAGER_KEY] = manager
    config.pluginmanager.register(manager, "handletrace-manager")
    config.pluginmanager.register(CheckedProtocol(manager), "handletrace-protocol")
    if settings.enabled:
        manager.ensure_installed()


@pytest.fixture
def handletrace_handles(request: pytest.FixtureRequest) -> CreatedHandles:
    """The native Speech SDK handles this test has created so far (its function-scoped
    fixtures included): ``.snapshot()``, ``.count(kind=None)``, ``.count_by_kind()``,
    ``.report(file, format)``. Tracking is switched on for the test if it was off."""
    manager = request.config.stash.get(MANAGER_KEY, None)
    window = manager.current if manager is not None else None
    if window is None:
        # No window opened around the protocol (the fixture was requested with
        # request.getfixturevalue(), so it was not in item.fixturenames): count from now on.
        if manager is not None:
            manager.ensure_installed()
        window = _Window(TRACKER.registry.last_seq(), request.node.nodeid)
    return CreatedHandles(window)
