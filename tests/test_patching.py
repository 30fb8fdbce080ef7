"""install() / uninstall(): idempotent, exactly reversible, safe on unexpected SDKs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from typing import Any, Callable, Dict

import pytest
from azure.cognitiveservices.speech import PropertyId, SpeechRecognizer, interop, speech

import handletrace
from handletrace._sdk.kinds import PATCHED_METHODS, RELEASE_FUNCTIONS, kind_of

from . import sdk_objects


def sdk_attributes() -> Dict[str, Any]:
    """Every SDK attribute handletrace may replace, by name."""
    attrs: Dict[str, Any] = {
        "_Handle.__init__": interop._Handle.__dict__["__init__"],
        "_Handle.__del__": interop._Handle.__dict__["__del__"],
        "ResultFuture.__init__": speech.ResultFuture.__dict__["__init__"],
    }
    for name in RELEASE_FUNCTIONS:
        attrs[name] = getattr(interop._sdk_lib, name, None)
    return attrs


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_install_returns_true_then_false_when_repeated() -> None:
    """A second install() is a no-op."""
    assert handletrace.install() is True
    assert handletrace.install() is False
    assert handletrace.is_installed()


def test_uninstall_restores_every_original_by_identity() -> None:
    """uninstall() puts back the very objects install() replaced."""
    before = sdk_attributes()
    handletrace.install()
    during = sdk_attributes()
    assert during["_Handle.__init__"] is not before["_Handle.__init__"]
    assert during["recognizer_handle_release"] is not before["recognizer_handle_release"]
    assert handletrace.uninstall() is True
    after = sdk_attributes()
    assert all(after[name] is before[name] for name in before)


def test_uninstall_when_not_installed_is_a_no_op() -> None:
    """uninstall() twice is harmless."""
    assert handletrace.uninstall() is False
    handletrace.install()
    assert handletrace.uninstall() is True
    assert handletrace.uninstall() is False


def test_install_uninstall_cycles_do_not_nest_wrappers() -> None:
    """After many cycles each wrapper wraps the original directly."""
    original_init = interop._Handle.__dict__["__init__"]
    original_release = interop._sdk_lib.recognizer_handle_release
    for _ in range(5):
        handletrace.install()
        handletrace.uninstall()
    handletrace.install()
    assert interop._Handle.__dict__["__init__"].__wrapped__ is original_init
    assert interop._sdk_lib.recognizer_handle_release.__wrapped__ is original_release


def test_uninstall_leaves_an_attribute_replaced_by_someone_else_alone() -> None:
    """Only attributes that are still handletrace's wrappers are restored."""
    handletrace.install()
    foreign = interop._Handle.__dict__["__del__"]

    def other_del(self: Any) -> None:
        foreign(self)

    interop._Handle.__del__ = other_del  # type: ignore[method-assign]
    try:
        handletrace.uninstall()
        assert interop._Handle.__dict__["__del__"] is other_del
    finally:
        interop._Handle.__del__ = foreign.__wrapped__  # type: ignore[method-assign]


def test_patched_methods_table_names_real_sdk_attributes() -> None:
    """Every declared patch target exists in the installed SDK."""
    for module_name, path in PATCHED_METHODS:
        cls_name, attr = path.split(".")
        assert attr in vars(getattr(sys.modules[module_name], cls_name))


def test_release_wrappers_forward_restype_to_the_ctypes_function() -> None:
    """The SDK sets fn.restype at call time; the wrapper forwards it to the real function."""
    import ctypes

    handletrace.install()
    wrapper = interop._sdk_lib.property_bag_release
    wrapper.restype = ctypes.c_size_t
    assert wrapper.__wrapped__.restype is ctypes.c_size_t


@pytest.mark.parametrize(
    "name, kind",
    [
        ("recognizer_handle_release", "recognizer"),
        ("recognizer_result_handle_release", "recognizer_result"),
        ("property_bag_release", "property_bag"),
        ("speech_config_release", "speech_config"),
        ("participant_release_handle", "participant"),
        ("recognizer_async_handle_release", "recognizer_async"),
    ],
)
def test_kind_is_derived_from_the_release_function_name(name: str, kind: str) -> None:
    """Kinds are named after the release function."""
    assert kind_of(name) == kind


@pytest.mark.parametrize(
    "options, message",
    [
        ({"stack_depth": -1}, "stack_depth must be an integer from 0 to 256, got -1"),
        ({"stack_depth": "16"}, "stack_depth must be an integer from 0 to 256, got '16'"),
        ({"stack_sample": -2}, "stack_sample must be 1 (every handle), N > 1"),
        ({"kinds": []}, "kinds must be a non-empty set of kind names"),
    ],
)
def test_install_rejects_bad_options_with_a_clear_error(options: Any, message: str) -> None:
    """Bad arguments raise one ValueError that says what is accepted; nothing is installed."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        handletrace.install(**options)
    assert not handletrace.is_installed()


def test_repeated_install_with_other_options_warns_and_keeps_the_first() -> None:
    """install() while installed with different options warns, and changes nothing."""
    handletrace.install(stack_depth=4)
    with pytest.warns(handletrace.HandleTraceWarning, match="already installed"):
        assert handletrace.install(stack_depth=8) is False
    from handletrace._core.state import TRACKER

    assert TRACKER.config.stack_depth == 4


def test_install_before_sdk_import_patches_it_on_import() -> None:
    """The post-import hook patches the SDK when it is first imported."""
    result = run_python(
        """
        import sys
        import handletrace
        assert "azure.cognitiveservices.speech" not in sys.modules
        handletrace.install()
        assert "azure.cognitiveservices.speech" not in sys.modules
        import azure.cognitiveservices.speech as sdk
        config = sdk.SpeechConfig(subscription="x", region="westus")
        print(sorted(r.kind for r in handletrace.snapshot()))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['property_bag', 'speech_config']"


def test_uninstall_before_sdk_import_leaves_the_sdk_unpatched() -> None:
    """A pending post-import hook does nothing once uninstall() ran."""
    result = run_python(
        """
        import handletrace
        handletrace.install()
        handletrace.uninstall()
        from azure.cognitiveservices.speech import interop
        print(hasattr(interop._Handle.__dict__["__init__"], "__wrapped__"))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_importing_handletrace_patches_nothing_and_imports_no_sdk() -> None:
    """Importing the package has no side effect."""
    result = run_python(
        """
        import sys
        import handletrace
        print("azure.cognitiveservices.speech" in sys.modules, handletrace.is_installed())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


def test_unexpected_sdk_internals_give_one_warning_and_leave_sdk_untouched() -> None:
    """If _Handle no longer looks as expected, install() warns once and patches nothing.

    Fault injection: the SDK's _Handle.__init__ is replaced by one with another signature
    (no real SDK release has that shape, so it must be simulated).
    """
    result = run_python(
        """
        import warnings
        warnings.simplefilter("always")
        from azure.cognitiveservices.speech import interop
        def __init__(self, native, checker, releaser):
            self._Handle__handle = native
        interop._Handle.__init__ = __init__
        import handletrace
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print(handletrace.install())
        print(len(caught))
        print(caught[0].message)
        print(interop._Handle.__dict__["__init__"] is __init__)
        print(handletrace.is_installed())
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "False"
    assert lines[1] == "1"
    assert "is not supported (interop._Handle.__init__ no longer takes" in lines[2]
    assert "left untouched" in lines[2]
    assert lines[3:] == ["True", "False"]


def test_instrumentation_error_is_counted_not_raised(
    hook_kind: str, break_recording: Callable[[], None]
) -> None:
    """A failure inside handletrace's hooks never reaches the SDK caller.

    Fault injection: record creation is made to fail; the real SDK cannot produce this.
    """
    handletrace.install()
    from handletrace._core.state import TRACKER

    config, audio_config = sdk_objects.speech_config(), sdk_objects.push_audio_config()
    created_before = handletrace.stats().created
    break_recording()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recognizer = SpeechRecognizer(speech_config=config, audio_config=audio_config)
    # The recognizer works: its native property bag answers.
    region = recognizer.properties.get_property(PropertyId.SpeechServiceConnection_Region)
    assert region == "westus", region
    stats = handletrace.stats()
    assert stats.instrumentation_errors == 2  # recognizer and its property bag
    assert stats.created == created_before
    assert TRACKER.registry.last_errors == ["_Handle.__init__: RuntimeError"] * 2
    del recognizer


def test_install_after_uninstall_starts_from_default_options() -> None:
    """Options of an earlier install() do not carry over to the next one."""
    from handletrace._core.state import TRACKER

    handletrace.install(kinds=["recognizer"], stack_depth=4)
    handletrace.uninstall()
    handletrace.install(stack_sample=0)
    assert (TRACKER.config.kinds, TRACKER.config.stack_depth) == (None, 16)


def test_kind_of_a_double_underscore_release_name_has_no_trailing_underscore() -> None:
    """Older SDKs name some functions ``x__handle_release``; the kind is ``x``."""
    assert kind_of("language_understanding_model__handle_release") == (
        "language_understanding_model"
    )
