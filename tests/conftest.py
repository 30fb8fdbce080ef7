"""Shared fixtures: every test starts from a fresh, uninstalled tracker."""

from __future__ import annotations

import gc
from typing import Iterator

import pytest

import handletrace
from handletrace._tracker import TRACKER


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
