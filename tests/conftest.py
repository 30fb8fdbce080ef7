"""Shared fixtures: every test starts from a fresh, uninstalled tracker."""

from __future__ import annotations

import gc
import os
import sys
import wave
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

import handletrace
from handletrace._core.state import TRACKER
from handletrace._instrument.hooks import NO_EXTENSIONS_VARIABLE
from handletrace._instrument.hooks import speedups as _speedups


@pytest.fixture(autouse=True)
def _reset_handletrace() -> Iterator[None]:
    """Reset the global tracker around each test (uninstall, forget all records)."""
    TRACKER.reset_defaults()
    yield
    TRACKER.reset_defaults()


@pytest.fixture
def installed() -> Iterator[None]:
    """handletrace installed for the duration of the test."""
    handletrace.install()
    yield
    handletrace.uninstall()


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Automatic cyclic GC off (as in production, where native memory never triggers it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@pytest.fixture
def wav(tmp_path: Path) -> str:
    """A 0.1 s silent 16 kHz mono WAV file (what AudioConfig(filename=...) needs)."""
    path = str(tmp_path / "silence.wav")
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * 1600)
    return path


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[Any]]:
    """Exceptions raised in finalisers (``__del__``) during the test."""
    seen: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    yield seen


class _BrokenConfig:
    """Reading any setting fails: what makes handletrace's own recording code fail (the
    real SDK cannot make it fail; used for fault injection only)."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError("record failure")


@pytest.fixture
def break_recording(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make every later handle record fail inside handletrace (fault injection)."""
    return lambda: monkeypatch.setattr(TRACKER, "config", _BrokenConfig())


@pytest.fixture(params=["c", "python"])
def hook_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the C ``_Handle`` hooks, then with the pure-Python ones."""
    if request.param == "c":
        if _speedups() is None:
            pytest.skip("the C accelerator handletrace._speedups is not built")
        monkeypatch.delenv(NO_EXTENSIONS_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(NO_EXTENSIONS_VARIABLE, "1")
    return str(request.param)


#: Set by .ci/run, which installs every prerequisite: there a skipped test is a failure (a
#: missing prerequisite must not pass for a green run). A person sees the skip and its reason.
IN_CI = os.environ.get("HANDLETRACE_CI", "") == "1"


def _fail_skip_in_ci(report: Any) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every prerequisite is installed: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())  # type: ignore[attr-defined]
