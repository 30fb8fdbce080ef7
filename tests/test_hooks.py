"""The two implementations of the ``_Handle`` hooks: the C accelerator and pure Python.

They must be interchangeable: same entries, counters, release causes and errors (the core
tracking tests also run with each, through the ``hook_kind`` fixture). Here: which one is in
place, how each behaves as a class attribute, and that both record the same facts.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any, Tuple

import pytest
from azure.cognitiveservices.speech import audio, interop

import handletrace
from handletrace._core.registry import HANDLE_ENTRY_LEN
from handletrace._core.state import TRACKER
from handletrace._instrument.hooks import NO_EXTENSIONS_VARIABLE, hooks_in_use
from handletrace._instrument.hooks import speedups as _speedups

from . import sdk_objects


def test_no_hooks_are_in_use_before_install() -> None:
    assert hooks_in_use() is None


def test_the_c_hooks_are_used_when_the_extension_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    if _speedups() is None:
        pytest.skip("the C accelerator handletrace._speedups is not built")
    monkeypatch.delenv(NO_EXTENSIONS_VARIABLE, raising=False)
    handletrace.install()
    assert hooks_in_use() == "c"


def test_the_environment_variable_keeps_the_c_hooks_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_EXTENSIONS_VARIABLE, "1")
    handletrace.install()
    assert hooks_in_use() == "python"


def test_an_invalid_value_warns_once_and_the_c_hooks_are_still_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(NO_EXTENSIONS_VARIABLE, "perhaps")
    with pytest.warns(handletrace.HandleTraceWarning) as caught:
        handletrace.install()
    handletrace.uninstall()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        handletrace.install()  # the same value again: no second warning
    assert len(caught) == 1
    assert str(caught[0].message).startswith(
        "handletrace: invalid value 'perhaps' for HANDLETRACE_NO_EXTENSIONS (accepted: 1, true"
    )
    assert hooks_in_use() == ("c" if _speedups() is not None else "python")


def test_ci_builds_the_extension() -> None:
    """CI sets HANDLETRACE_EXPECT_EXTENSION=1: there a failed compilation must not pass
    silently as a pure-Python install."""
    if os.environ.get("HANDLETRACE_EXPECT_EXTENSION") != "1":
        pytest.skip("only where the build is expected to compile the extension (CI)")
    assert _speedups() is not None


def test_hooks_look_like_the_methods_they_replace(hook_kind: str) -> None:
    original_init = interop._Handle.__dict__["__init__"]
    handletrace.install()
    hook = interop._Handle.__dict__["__init__"]
    assert hook is not original_init
    assert hook.__wrapped__ is original_init
    assert hook.__name__ == "__init__"
    assert hook.__qualname__ == "_Handle.__init__"
    assert interop._Handle.__init__ is hook  # through the class: the hook itself
    handletrace.uninstall()
    assert interop._Handle.__dict__["__init__"] is original_init


def test_explicit_calls_through_the_class_and_instance_work(hook_kind: str) -> None:
    handletrace.install()
    made = interop._Handle.__new__(interop._Handle)
    # An explicit unbound call, the way a subclass's __init__ would call it.
    interop._Handle.__init__(made, None, None, lambda handle: None)
    assert made.get() is None
    assert made.__init__.__self__ is made  # through an instance: a bound method
    assert handletrace.stats().kinds["<lambda>"].live == 1
    del made
    assert handletrace.stats().kinds["<lambda>"].live == 0


def entry_of(obj_seq: int) -> Tuple[Any, ...]:
    return TRACKER.registry.live_table[obj_seq]


def test_entry_layout_is_the_same_for_both_hooks(hook_kind: str) -> None:
    handletrace.install(stack_depth=4)
    stream = audio.PushAudioInputStream()
    before = time.monotonic()
    config = audio.AudioConfig(stream=stream)
    after = time.monotonic()
    handle_obj = vars(config)["_AudioConfig__handle"]
    seq = TRACKER.registry.seq_of_handle(handle_obj)
    entry = entry_of(seq)
    assert len(entry) == HANDLE_ENTRY_LEN
    number, kind, handle, code, thread, created, traceback = entry
    assert (number, kind) == (seq, "audio_config")
    assert handle is handle_obj.get()
    assert code.co_name == "__init__" and code.co_filename.endswith("audio.py")
    assert thread.name == "MainThread"
    assert before <= created <= after  # time.monotonic's clock
    assert traceback.origin.name == "test_entry_layout_is_the_same_for_both_hooks"
    assert len(traceback) == 4
    del config


def test_same_call_site_gives_the_same_interned_stack(hook_kind: str) -> None:
    handletrace.install()
    configs = [sdk_objects.speech_config() for _ in range(3)]
    stacks = {id(r.traceback) for r in handletrace.snapshot().filter(kinds=["speech_config"])}
    assert len(stacks) == 1
    del configs
