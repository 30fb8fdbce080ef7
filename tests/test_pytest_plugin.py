"""The pytest plugin, run on small test suites with pytester (real SDK objects, offline)."""

from __future__ import annotations

import gc
import importlib.metadata
import json
import os
import textwrap

import azure.cognitiveservices.speech  # noqa: F401  (imported before pytester snapshots sys.modules)
import pytest

import handletrace
import handletrace.pytest_plugin  # noqa: F401
from handletrace.pytest_plugin import MarkerOptions, Settings, SettingsError, resolve_settings

pytest_plugins = ["pytester"]


def _entry_point_installed() -> bool:
    eps = importlib.metadata.entry_points()
    group = eps.select(group="pytest11") if hasattr(eps, "select") else eps.get("pytest11", ())
    return any(ep.value == "handletrace.pytest_plugin" for ep in group)


# Installed (pip install -e . / CI), the entry point loads the plugin; in a bare checkout it
# must be named. Naming it as well would register the module twice, which pytest refuses.
PLUGIN = (
    ()
    if _entry_point_installed()
    # This module imports the plugin first, so pytest cannot assertion-rewrite it: say nothing.
    else ("-p", "handletrace.pytest_plugin", "-W", "ignore::pytest.PytestAssertRewriteWarning")
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Other installed plugins are switched off in the inner runs: in-process, each run would
# import (and assertion-rewrite) their modules again, which is most of a run's time.
QUIET_PLUGINS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")

HELPERS = '''
import gc
import pytest
import azure.cognitiveservices.speech as speechsdk
from azure.cognitiveservices.speech import audio, transcription

KEEP = []


def transcriber():
    config = speechsdk.SpeechConfig(subscription="dummy", region="westus")
    stream = audio.AudioConfig(stream=audio.PushAudioInputStream())
    return transcription.ConversationTranscriber(speech_config=config, audio_config=stream)


def leaky_transcriber():
    """The seed's leak: the callback closure captures its own transcriber."""
    t = transcriber()

    def on_transcribed(evt):
        print(t)

    t.transcribed.connect(on_transcribed)
'''


def make_suite(pytester: pytest.Pytester, body: str) -> None:
    pytester.makepyfile(test_suite=HELPERS + textwrap.dedent(body))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, *QUIET_PLUGINS, *args)


# -- failing and passing ---------------------------------------------------------------------


def test_leaking_test_fails_and_clean_test_passes(pytester: pytest.Pytester) -> None:
    """With --handletrace the seed's leak fails its test; a test that frees everything passes."""
    make_suite(
        pytester,
        """
        def test_leaky():
            leaky_transcriber()

        def test_clean():
            t = transcriber()
            del t
        """,
    )
    result = run(pytester, "--handletrace")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_leaky _*",
            "handletrace: 2 native handles created by this test are still alive after it ended "
            "(2 cyclic garbage)",
            "*- handletrace -*",
            "handletrace: 2 live native handles in 1 group*",
            "*2 handles created at *test_suite.py:* in transcriber",
            "*1 x recognizer*ConversationTranscriber",
            "*1 x property_bag*PropertyCollection of ConversationTranscriber",
            "*Traceback (most recent call last):",
            '*File "*test_suite.py", line *, in test_leaky',
            "*leaky_transcriber()",
        ]
    )
    # (pytest 9 adds " - handletrace: 2 native handles..." after the test id)
    result.stdout.fnmatch_lines(["LEAKED test_suite.py::test_leaky*"])
    assert "test_clean" not in result.stdout.str().split("short test summary")[1]


def test_failure_section_says_which_handles_were_cyclic_garbage(pytester: pytest.Pytester) -> None:
    """The report separates handles only gc.collect() freed from handles still reachable."""
    make_suite(
        pytester,
        """
        def test_both():
            leaky_transcriber()
            KEEP.append(transcriber())
        """,
    )
    result = run(pytester, "--handletrace")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*4 native handles created by this test are still alive after it ended "
            "(2 cyclic garbage, 2 still reachable)",
            "note: 2 of 4 handles were cyclic garbage: freed only by the gc.collect()*",
            "note: 2 of 4 handles are still reachable after gc.collect()*",
        ]
    )


def test_creation_stack_leaves_out_pytest_frames(pytester: pytest.Pytester) -> None:
    """The creation stack in the section starts at the test, not in pytest or pluggy."""
    make_suite(pytester, "def test_leaky():\n    leaky_transcriber()\n")
    result = run(pytester, "--handletrace")
    section = result.stdout.str().split("- handletrace -")[1]
    assert "/_pytest/" not in section
    assert "/pluggy/" not in section
    assert "/handletrace/" not in section


def test_leak_is_found_although_the_test_makes_lots_of_cyclic_garbage(
    pytester: pytest.Pytester,
) -> None:
    """Automatic collection is off during a checked test: garbage churn cannot hide the leak."""
    make_suite(
        pytester,
        """
        def test_leaky_with_churn():
            leaky_transcriber()
            for _ in range(50_000):  # far past the gen-0 threshold
                a = []
                a.append(a)
        """,
    )
    result = run(pytester, "--handletrace")
    result.assert_outcomes(failed=1)


def test_automatic_gc_is_off_during_a_checked_test_and_restored_after(
    pytester: pytest.Pytester,
) -> None:
    """The plugin switches automatic GC off for a checked test and back on afterwards."""
    make_suite(
        pytester,
        """
        def test_checked():
            assert not gc.isenabled()

        @pytest.mark.handletrace(False)
        def test_unchecked():
            assert gc.isenabled()
        """,
    )
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        result = run(pytester, "--handletrace")
        result.assert_outcomes(passed=2)
        assert gc.isenabled()
    finally:
        if not was_enabled:
            gc.disable()


def test_test_that_already_failed_keeps_its_failure_and_gets_the_section(
    pytester: pytest.Pytester,
) -> None:
    """A failing test stays an ordinary failure; the leak section is added with a caveat."""
    make_suite(
        pytester,
        """
        def test_fails():
            KEEP.append(transcriber())
            assert 1 == 2
        """,
    )
    result = run(pytester, "--handletrace", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*assert 1 == 2", "*- handletrace -*", "note: the test failed; its traceback keeps*"]
    )
    result.stdout.fnmatch_lines(["FAILED test_suite.py::test_fails - assert 1 == 2"])


def test_skipped_and_xfail_tests_are_not_judged(pytester: pytest.Pytester) -> None:
    """A test that skips or is expected to fail is not turned into a leak failure."""
    make_suite(
        pytester,
        """
        def test_skips():
            KEEP.append(transcriber())
            pytest.skip("not today")

        @pytest.mark.xfail(reason="known")
        def test_xfails():
            KEEP.append(transcriber())
            assert False
        """,
    )
    result = run(pytester, "--handletrace")
    result.assert_outcomes(skipped=1, xfailed=1)


def test_verbose_status_word_is_leaked(pytester: pytest.Pytester) -> None:
    """In verbose mode a leaking test is shown as LEAKED, and the summary names it."""
    make_suite(pytester, "def test_leaky():\n    leaky_transcriber()\n")
    result = run(pytester, "--handletrace", "-v")
    result.stdout.fnmatch_lines(["test_suite.py::test_leaky LEAKED*"])
    result.stdout.fnmatch_lines(
        [
            "*= handletrace: 1 test leaked native handles =*",
            "test_suite.py::test_leaky: 2 handles (2 cyclic garbage)",
        ]
    )


def test_clean_run_prints_one_summary_line(pytester: pytest.Pytester) -> None:
    """With --handletrace and no leak, the summary says how many tests were checked."""
    make_suite(pytester, "def test_clean():\n    transcriber()\n")
    result = run(pytester, "--handletrace")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["handletrace: 1 test checked, no native handle leaked"])


# -- attribution -----------------------------------------------------------------------------


def test_handle_released_in_the_next_test_is_blamed_on_the_test_that_created_it(
    pytester: pytest.Pytester,
) -> None:
    """Created by test_a and released by test_b: test_a fails, test_b passes."""
    make_suite(
        pytester,
        """
        def test_a_keeps():
            KEEP.append(transcriber())

        def test_b_releases():
            KEEP.clear()
        """,
    )
    result = run(pytester, "--handletrace", "-v")
    result.stdout.fnmatch_lines(
        ["*test_a_keeps LEAKED*", "*test_b_releases PASSED*"], consecutive=False
    )
    result.assert_outcomes(failed=1, passed=1)


def test_leak_of_one_test_is_not_reported_again_by_the_next(pytester: pytest.Pytester) -> None:
    """A still-reachable leak stays alive, but only the test that made it is blamed."""
    make_suite(
        pytester,
        """
        def test_a_keeps():
            KEEP.append(transcriber())

        def test_b_clean():
            transcriber()
        """,
    )
    result = run(pytester, "--handletrace", "-v")
    result.stdout.fnmatch_lines(["*test_a_keeps LEAKED*", "*test_b_clean PASSED*"])


@pytest.mark.parametrize("scope", ["session", "package", "module", "class"])
def test_wider_scoped_fixture_is_not_blamed_on_the_first_test_using_it(
    pytester: pytest.Pytester, scope: str
) -> None:
    """Handles made while setting up a fixture of a wider scope belong to no test."""
    make_suite(
        pytester,
        f"""
        @pytest.fixture(scope="{scope}")
        def shared():
            t = transcriber()
            yield t
            t.transcribed.disconnect_all()

        class TestUsers:
            def test_first(self, shared):
                assert shared

            def test_second(self, shared):
                assert shared
        """,
    )
    result = run(pytester, "--handletrace")
    result.assert_outcomes(passed=2)


def test_function_scoped_fixture_belongs_to_the_test(pytester: pytest.Pytester) -> None:
    """A leak made in a function-scoped fixture's setup fails the test that used it."""
    make_suite(
        pytester,
        """
        @pytest.fixture
        def leaky():
            KEEP.append(transcriber())

        def test_uses_leaky(leaky):
            pass
        """,
    )
    result = run(pytester, "--handletrace")
    result.assert_outcomes(failed=1)


def test_handles_freed_in_fixture_teardown_are_not_leaks(pytester: pytest.Pytester) -> None:
    """The check runs after function-scoped fixtures are torn down."""
    make_suite(
        pytester,
        """
        @pytest.fixture
        def held():
            holder = [transcriber()]
            yield holder
            holder.clear()

        def test_uses_held(held):
            assert len(held) == 1
        """,
    )
    result = run(pytester, "--handletrace")
    result.assert_outcomes(passed=1)


# -- marker ----------------------------------------------------------------------------------


def test_plugin_is_inert_without_option_or_marker(pytester: pytest.Pytester) -> None:
    """Unasked, the plugin installs nothing and fails nothing."""
    make_suite(
        pytester,
        """
        import handletrace

        def test_leaky_but_unchecked():
            assert not handletrace.is_installed()
            leaky_transcriber()
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "handletrace" not in result.stdout.str().split("collected 1 item")[1]


def test_marker_checks_one_test_without_the_option(pytester: pytest.Pytester) -> None:
    """@pytest.mark.handletrace checks the marked test only."""
    make_suite(
        pytester,
        """
        @pytest.mark.handletrace
        def test_marked():
            leaky_transcriber()

        def test_unmarked():
            leaky_transcriber()
        """,
    )
    result = run(pytester, "-v")
    result.stdout.fnmatch_lines(["*test_marked LEAKED*", "*test_unmarked PASSED*"])


def test_marker_false_exempts_a_test_from_the_option(pytester: pytest.Pytester) -> None:
    """@pytest.mark.handletrace(False) is not checked under --handletrace."""
    make_suite(
        pytester,
        """
        @pytest.mark.handletrace(False)
        def test_exempt():
            leaky_transcriber()
        """,
    )
    run(pytester, "--handletrace").assert_outcomes(passed=1)


def test_marker_allow_lets_those_kinds_outlive_the_test(pytester: pytest.Pytester) -> None:
    """Kinds listed in allow= are not counted."""
    make_suite(
        pytester,
        """
        @pytest.mark.handletrace(allow=["recognizer", "property_bag"])
        def test_allowed():
            KEEP.append(transcriber())

        @pytest.mark.handletrace(allow=["recognizer"])
        def test_partly_allowed():
            KEEP.append(transcriber())
        """,
    )
    result = run(pytester, "-v")
    result.stdout.fnmatch_lines(["*test_allowed PASSED*", "*test_partly_allowed LEAKED*"])
    result.stdout.fnmatch_lines(["*1 native handle created by this test is still alive*"])


@pytest.mark.parametrize(("max_leaks", "outcome"), [(2, "PASSED"), (1, "LEAKED")])
def test_marker_max_leaks_tolerates_that_many(
    pytester: pytest.Pytester, max_leaks: int, outcome: str
) -> None:
    """max_leaks=N tolerates up to N leaked handles (a transcriber leaks 2)."""
    make_suite(
        pytester,
        f"""
        @pytest.mark.handletrace(max_leaks={max_leaks})
        def test_leaks_two():
            KEEP.append(transcriber())
        """,
    )
    run(pytester, "-v").stdout.fnmatch_lines([f"*test_leaks_two {outcome}*"])


def test_marker_allow_cycles_accepts_cyclic_garbage_only(pytester: pytest.Pytester) -> None:
    """allow_cycles=True passes a cycle-only leak but not a still-reachable one."""
    make_suite(
        pytester,
        """
        @pytest.mark.handletrace(allow_cycles=True)
        def test_cycle():
            leaky_transcriber()

        @pytest.mark.handletrace(allow_cycles=True)
        def test_reachable():
            KEEP.append(transcriber())
        """,
    )
    result = run(pytester, "-v")
    result.stdout.fnmatch_lines(["*test_cycle PASSED*", "*test_reachable LEAKED*"])


def test_invalid_marker_argument_stops_the_run_naming_the_test(pytester: pytest.Pytester) -> None:
    """A bad marker value is a usage error naming the test and the value."""
    make_suite(
        pytester,
        """
        @pytest.mark.handletrace(max_leaks=-1)
        def test_bad():
            pass
        """,
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: handletrace: invalid @pytest.mark.handletrace(...) on "
            "test_suite.py::test_bad: max_leaks must be an integer >= 0, got -1"
        ]
    )


def test_marker_with_unknown_kind_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A misspelt kind in allow= is refused rather than silently allowing nothing."""
    make_suite(
        pytester,
        """
        @pytest.mark.handletrace(allow=["recogniser"])
        def test_typo():
            pass
        """,
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: handletrace: invalid @pytest.mark.handletrace(...) on test_suite.py::test_typo:"
            " unknown handle kind 'recogniser' (did you mean 'recognizer'?); known kinds: *"
        ]
    )


def test_marker_help_is_registered_even_when_inert(pytester: pytest.Pytester) -> None:
    """pytest --markers documents the marker without --handletrace."""
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.handletrace(enabled=True, *, allow=None, max_leaks=0, "
            "allow_cycles=False, max_blocking=None): check this test for native Speech SDK "
            "handles*"
        ]
    )


# -- fixture ---------------------------------------------------------------------------------


def test_fixture_gives_the_handles_the_test_created(pytester: pytest.Pytester) -> None:
    """handletrace_handles counts this test's live handles, not a session fixture's."""
    make_suite(
        pytester,
        """
        @pytest.fixture(scope="session")
        def shared():
            return transcriber()

        def test_counts(shared, handletrace_handles):
            assert handletrace_handles.count() == 0
            t = transcriber()
            assert handletrace_handles.count_by_kind() == {"property_bag": 1, "recognizer": 1}
            assert handletrace_handles.count("recognizer") == 1
            snap = handletrace_handles.snapshot()
            assert [r.owner for r in snap] == ["ConversationTranscriber", "PropertyCollection"]
            del t
            assert handletrace_handles.count() == 0
        """,
    )
    run(pytester).assert_outcomes(passed=1)


def test_fixture_alone_does_not_check_the_test(pytester: pytest.Pytester) -> None:
    """Using the fixture tracks the test's handles but does not fail it for a leak."""
    make_suite(
        pytester,
        """
        def test_looks_only(handletrace_handles):
            KEEP.append(transcriber())
            assert handletrace_handles.count() == 2
        """,
    )
    run(pytester).assert_outcomes(passed=1)


# -- configuration ---------------------------------------------------------------------------


def test_ini_option_enables_the_check(pytester: pytest.Pytester) -> None:
    """handletrace = true in the ini file checks every test."""
    pytester.makeini("[pytest]\nhandletrace = true\n")
    make_suite(pytester, "def test_leaky():\n    leaky_transcriber()\n")
    run(pytester).assert_outcomes(failed=1)


def test_pyproject_option_enables_the_check(pytester: pytest.Pytester) -> None:
    """handletrace = true under [tool.pytest.ini_options] in pyproject.toml works too."""
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\nhandletrace = true\n")
    make_suite(pytester, "def test_leaky():\n    leaky_transcriber()\n")
    run(pytester).assert_outcomes(failed=1)


def test_environment_enables_the_check(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HANDLETRACE_PYTEST=1 checks every test."""
    monkeypatch.setenv("HANDLETRACE_PYTEST", "1")
    make_suite(pytester, "def test_leaky():\n    leaky_transcriber()\n")
    run(pytester).assert_outcomes(failed=1)


def test_environment_overrides_the_ini_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HANDLETRACE_PYTEST=0 wins over handletrace = true in the ini file."""
    pytester.makeini("[pytest]\nhandletrace = true\n")
    monkeypatch.setenv("HANDLETRACE_PYTEST", "0")
    make_suite(pytester, "def test_leaky():\n    leaky_transcriber()\n")
    run(pytester).assert_outcomes(passed=1)


def test_command_line_overrides_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--no-handletrace wins over HANDLETRACE_PYTEST=1."""
    monkeypatch.setenv("HANDLETRACE_PYTEST", "1")
    make_suite(pytester, "def test_leaky():\n    leaky_transcriber()\n")
    run(pytester, "--no-handletrace").assert_outcomes(passed=1)


def test_allow_from_the_command_line(pytester: pytest.Pytester) -> None:
    """--handletrace-allow lets those kinds outlive every test."""
    make_suite(pytester, "def test_keeps():\n    KEEP.append(transcriber())\n")
    run(pytester, "--handletrace", "--handletrace-allow=recognizer,property_bag").assert_outcomes(
        passed=1
    )


def test_invalid_environment_value_names_the_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad environment value stops the run naming the value and the variable."""
    monkeypatch.setenv("HANDLETRACE_PYTEST", "maybe")
    make_suite(pytester, "def test_x():\n    pass\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: handletrace: invalid value 'maybe' from environment variable "
            "HANDLETRACE_PYTEST: expected 1, true, yes or on to enable; 0, false, no or off "
            "to disable"
        ]
    )


def test_invalid_ini_value_names_the_file(pytester: pytest.Pytester) -> None:
    """A bad ini value stops the run naming the value, the option and the file."""
    ini = pytester.makeini("[pytest]\nhandletrace_stack_depth = deep\n")
    make_suite(pytester, "def test_x():\n    pass\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: handletrace: invalid value 'deep' from ini option handletrace_stack_depth "
            f"in {ini}: expected an integer from 0 to 256"
        ]
    )


def test_invalid_command_line_value_names_the_option(pytester: pytest.Pytester) -> None:
    """A bad command-line value stops the run naming the option."""
    make_suite(pytester, "def test_x():\n    pass\n")
    result = run(pytester, "--handletrace-stack-depth=-3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: handletrace: invalid value '-3' from command line option "
            "--handletrace-stack-depth: expected an integer from 0 to 256"
        ]
    )


def test_resolve_settings_order_is_cli_then_environment_then_ini() -> None:
    """Each setting takes the first source that gives it: CLI, environment, ini, default."""
    settings = resolve_settings(
        {"enabled": None, "stack_depth": "4"},
        {"enabled": "true", "stack_depth": "8", "allow": ["speech_config"]},
        {"HANDLETRACE_STACK_DEPTH": "6", "HANDLETRACE_PYTEST": "0"},
    )
    assert settings == Settings(enabled=False, allow=frozenset({"speech_config"}), stack_depth=4)


def test_resolve_settings_reports_every_bad_value_even_overridden_ones() -> None:
    """A bad value is reported even where a higher source overrides it."""
    with pytest.raises(SettingsError) as info:
        resolve_settings(
            {"enabled": True},
            {"enabled": "perhaps"},
            {"HANDLETRACE_STACK_DEPTH": "x"},
            ini_file="tox.ini",
        )
    assert str(info.value).splitlines() == [
        "handletrace: invalid value 'perhaps' from ini option handletrace in tox.ini: expected "
        "1, true, yes or on to enable; 0, false, no or off to disable",
        "handletrace: invalid value 'x' from environment variable HANDLETRACE_STACK_DEPTH: "
        "expected an integer from 0 to 256",
    ]


def test_marker_function_validates_and_returns_options() -> None:
    """handletrace(...) (the marker's signature) returns the parsed options."""
    assert handletrace.pytest_plugin.handletrace(allow="recognizer", max_leaks=3) == MarkerOptions(
        enabled=True, allow=frozenset({"recognizer"}), max_leaks=3, allow_cycles=False
    )


# -- installation ----------------------------------------------------------------------------


def test_plugin_uninstalls_what_it_installed(pytester: pytest.Pytester) -> None:
    """Tracking installed by --handletrace is removed when the session ends."""
    make_suite(
        pytester,
        """
        import handletrace

        def test_installed():
            assert handletrace.is_installed()
        """,
    )
    run(pytester, "--handletrace").assert_outcomes(passed=1)
    assert not handletrace.is_installed()


def test_plugin_in_a_subprocess_fails_the_leak(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin works in a separate interpreter (as pytest runs from the shell)."""
    # Importable from the checkout too, when handletrace is not pip-installed.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    )
    make_suite(pytester, "def test_leaky():\n    leaky_transcriber()\n")
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider", "--handletrace")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*(2 cyclic garbage)"])


def test_failure_section_shows_the_diagnosed_cycle(pytester: pytest.Pytester) -> None:
    """The section carries the diagnosis: the cycle that kept the handles alive, and the fix."""
    make_suite(pytester, "def test_leaky():\n    leaky_transcriber()\n")
    result = run(pytester, "--handletrace")
    result.stdout.fnmatch_lines(
        [
            "*cycle: ConversationTranscriber -> EventSignal (transcribed) -> list -> "
            "function on_transcribed (closure cell 't') -> ConversationTranscriber",
            "*fix: *disconnect_all()*",
        ]
    )


# -- the shared HANDLETRACE_* settings ---------------------------------------------------------


def test_misspelt_allow_option_is_refused_naming_the_closest_kind(
    pytester: pytest.Pytester,
) -> None:
    """--handletrace-allow=recogniser stops the run with the one unknown-kind wording."""
    make_suite(pytester, "def test_x():\n    pass\n")
    result = run(pytester, "--handletrace", "--handletrace-allow=recogniser")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: handletrace: invalid value 'recogniser' from command line option "
            "--handletrace-allow: unknown handle kind 'recogniser' (did you mean "
            "'recognizer'?); known kinds: audio_config, *"
        ]
    )


def test_kinds_option_tracks_only_those_kinds(pytester: pytest.Pytester) -> None:
    """--handletrace-kinds=recognizer: the transcriber's property bag is not tracked."""
    make_suite(pytester, "def test_keeps():\n    KEEP.append(transcriber())\n")
    result = run(pytester, "--handletrace", "--handletrace-kinds=recognizer")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*1 native handle created by this test is still alive*"])


def test_kinds_from_the_environment_win_over_the_ini_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HANDLETRACE_KINDS=property_bag wins over handletrace_kinds = recognizer in the ini."""
    pytester.makeini("[pytest]\nhandletrace_kinds = recognizer\n")
    monkeypatch.setenv("HANDLETRACE_KINDS", "property_bag")
    make_suite(pytester, "def test_keeps():\n    KEEP.append(transcriber())\n")
    result = run(pytester, "--handletrace", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*1 x property_bag*"])
    assert "x recognizer" not in result.stdout.str()


def test_misspelt_kinds_in_the_environment_stop_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HANDLETRACE_KINDS=recogniser is refused (naming the variable), not an all-clear."""
    monkeypatch.setenv("HANDLETRACE_KINDS", "recogniser")
    make_suite(pytester, "def test_x():\n    pass\n")
    result = run(pytester, "--handletrace")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: handletrace: invalid value 'recogniser' from environment variable "
            "HANDLETRACE_KINDS: unknown handle kind 'recogniser' (did you mean 'recognizer'?)*"
        ]
    )


def test_stack_sample_from_the_environment_applies(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HANDLETRACE_STACK_SAMPLE=0: the failure section has no creation stack."""
    monkeypatch.setenv("HANDLETRACE_STACK_SAMPLE", "0")
    make_suite(pytester, "def test_keeps():\n    KEEP.append(transcriber())\n")
    result = run(pytester, "--handletrace")
    result.assert_outcomes(failed=1)
    section = result.stdout.str().split("- handletrace -")[1]
    assert "no creation stack captured" in section, section
    assert "Traceback (most recent call last)" not in section, section


def test_stack_depth_from_the_environment_applies(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HANDLETRACE_STACK_DEPTH=1: one frame per creation stack in the failure section."""
    monkeypatch.setenv("HANDLETRACE_STACK_DEPTH", "1")
    make_suite(pytester, "def test_keeps():\n    KEEP.append(transcriber())\n")
    result = run(pytester, "--handletrace")
    section = result.stdout.str().split("- handletrace -")[1]
    assert section.count('File "') == 1, section


def test_session_report_from_the_environment_lists_what_no_test_is_blamed_for(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HANDLETRACE_REPORT=x.json: the handles a session fixture left alive are written there."""
    out = pytester.path / "session.json"
    monkeypatch.setenv("HANDLETRACE_REPORT", str(out))
    make_suite(
        pytester,
        """
        @pytest.fixture(scope="session")
        def shared():
            KEEP.append(transcriber())

        def test_uses_shared(shared):
            pass
        """,
    )
    run(pytester, "--handletrace").assert_outcomes(passed=1)
    data = json.loads(out.read_text())
    assert (data["schema"], data["summary"]["live"]) == ("handletrace.report", 2), data["summary"]


def test_report_option_wins_over_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--handletrace-report=x.html wins over HANDLETRACE_REPORT; its extension picks HTML."""
    monkeypatch.setenv("HANDLETRACE_REPORT", str(pytester.path / "env.json"))
    make_suite(pytester, "def test_keeps():\n    KEEP.append(transcriber())\n")
    run(pytester, "--handletrace", "--handletrace-report=cli.html")
    assert (pytester.path / "cli.html").read_text().startswith("<!DOCTYPE html>")
    assert not (pytester.path / "env.json").exists()


def test_no_session_report_when_nothing_was_tracked(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inert (no --handletrace, no marker, no fixture), the plugin writes no report."""
    monkeypatch.setenv("HANDLETRACE_REPORT", str(pytester.path / "x.json"))
    make_suite(pytester, "def test_x():\n    pass\n")
    run(pytester).assert_outcomes(passed=1)
    assert not (pytester.path / "x.json").exists()


@pytest.mark.parametrize(
    ("field", "variable", "value", "expected"),
    [
        ("stack_depth", "HANDLETRACE_STACK_DEPTH", "256", 256),
        ("stack_depth", "HANDLETRACE_STACK_DEPTH", " 3 ", 3),
        ("stack_depth", "HANDLETRACE_STACK_DEPTH", "0", 0),
        ("stack_sample", "HANDLETRACE_STACK_SAMPLE", "2147483647", 2147483647),
        ("stack_sample", "HANDLETRACE_STACK_SAMPLE", "0", 0),
        ("kinds", "HANDLETRACE_KINDS", "all", None),
        ("kinds", "HANDLETRACE_KINDS", "recognizer", frozenset({"recognizer"})),
        ("enabled", "HANDLETRACE_PYTEST", " ON ", True),
        ("allow", "HANDLETRACE_PYTEST_ALLOW", "speech_config", frozenset({"speech_config"})),
        ("report", "HANDLETRACE_REPORT", " STDOUT ", "stdout"),
        ("report_format", "HANDLETRACE_REPORT_FORMAT", "Html", "html"),
        ("stale_after", "HANDLETRACE_STALE_AFTER", "0.5", 0.5),
        ("max_blocking", "HANDLETRACE_PYTEST_MAX_BLOCKING", "0", 0.0),
        ("max_blocking", "HANDLETRACE_PYTEST_MAX_BLOCKING", " 2.5 ", 2.5),
    ],
)
def test_environment_boundary_values_the_plugin_accepts(
    field: str, variable: str, value: str, expected: object
) -> None:
    """The edges of what each variable accepts are taken as given."""
    assert getattr(resolve_settings({}, {}, {variable: value}), field) == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HANDLETRACE_STACK_DEPTH", "257"),
        ("HANDLETRACE_STACK_DEPTH", "-1"),
        ("HANDLETRACE_STACK_DEPTH", "1.5"),
        ("HANDLETRACE_STACK_DEPTH", "+3"),
        ("HANDLETRACE_STACK_SAMPLE", "2147483648"),
        ("HANDLETRACE_STACK_SAMPLE", "-1"),
        ("HANDLETRACE_KINDS", "recogniser"),
        ("HANDLETRACE_PYTEST", "2"),
        ("HANDLETRACE_PYTEST_ALLOW", "recogniser"),
        ("HANDLETRACE_REPORT", " "),
        ("HANDLETRACE_REPORT_FORMAT", "svg"),
        ("HANDLETRACE_STALE_AFTER", "0"),
        ("HANDLETRACE_PYTEST_MAX_BLOCKING", "-0.1"),
        ("HANDLETRACE_PYTEST_MAX_BLOCKING", "inf"),
        ("HANDLETRACE_PYTEST_MAX_BLOCKING", "none"),
    ],
)
def test_environment_boundary_values_the_plugin_refuses(variable: str, value: str) -> None:
    """Just past each edge: one line naming the value and the variable."""
    with pytest.raises(SettingsError) as info:
        resolve_settings({}, {}, {variable: value})
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"handletrace: invalid value {value!r} from environment variable {variable}: "
    ), lines


# -- the hookwrappers ------------------------------------------------------------------------

OTHER_PROTOCOL = '''
import pytest
from _pytest.runner import runtestprotocol

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Another plugin running the protocol itself (as pytest-rerunfailures does)."""
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    runtestprotocol(item, nextitem=nextitem)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
'''


def test_fixture_counts_from_the_start_of_setup_whoever_runs_the_protocol(
    pytester: pytest.Pytester,
) -> None:
    """With another plugin running the protocol, handletrace_handles still counts the
    handles made by the test's function-scoped fixtures set up before it."""
    pytester.makeconftest(OTHER_PROTOCOL)
    make_suite(
        pytester,
        """
        @pytest.fixture
        def made():
            return transcriber()

        def test_counts(made, handletrace_handles):
            assert handletrace_handles.count() == 2
        """,
    )
    run(pytester).assert_outcomes(passed=1)


def test_gc_is_off_in_a_checked_test_whoever_runs_the_protocol(pytester: pytest.Pytester) -> None:
    """Automatic GC is off during a checked test even when another plugin runs its protocol."""
    pytester.makeconftest(OTHER_PROTOCOL)
    make_suite(pytester, "def test_checked():\n    assert not gc.isenabled()\n")
    run(pytester, "--handletrace").assert_outcomes(passed=1)


def test_fixture_only_test_runs_under_pytests_own_protocol(pytester: pytest.Pytester) -> None:
    """A test using only the fixture is not run by the plugin: its reports are logged as
    each phase ends (the call's before the teardown runs), as pytest does."""
    pytester.makeconftest(
        '''
        import pytest
        ORDER = []

        def pytest_runtest_logreport(report):
            ORDER.append("log " + report.when)

        @pytest.fixture
        def recorded():
            yield
            ORDER.append("teardown")

        def pytest_sessionfinish(session):
            print("order:", ORDER)
        '''
    )
    make_suite(pytester, "def test_looks(recorded, handletrace_handles):\n    pass\n")
    result = run(pytester, "-s")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "order: ['log setup', 'log call', 'teardown', 'log teardown']" in out, out


# -- what blocked ------------------------------------------------------------------------------

BLOCKING_HELPERS = """
import asyncio

import pytest

from handletrace.testing import Script, SpeechService, Teardown
from tests.blocking_scenarios import running_recognizer


@pytest.fixture(scope="module")
def service():
    with SpeechService(Script.of("hello", teardown=Teardown(answer_end=False))) as service:
        yield service


def drop_on_a_loop(service):
    recognizer, feed = running_recognizer(service)
    holder = [recognizer]
    del recognizer

    async def drop():
        holder.pop()  # the release waits ~1 s: the loop is blocked

    asyncio.run(drop())
"""


def make_blocking_suite(pytester: pytest.Pytester, body: str) -> None:
    pytester.makepyfile(test_blocking_suite=BLOCKING_HELPERS + textwrap.dedent(body))


def test_what_a_test_blocked_is_in_its_section_and_does_not_fail_it_by_default(
    pytester: pytest.Pytester,
) -> None:
    """A checked test whose SDK teardown blocked its loop passes (no limit by default); its
    handletrace section (-rA) shows the blocking site and the fix, the summary says how to
    fail such tests."""
    make_blocking_suite(
        pytester,
        """
        def test_blocks(service):
            drop_on_a_loop(service)
        """,
    )
    result = run(pytester, "--handletrace", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*- handletrace -*",
            "blocking: 1 slow release at 1 site, * in all, * worst; event loops blocked *",
            "*release recognizer (*): 1x, * in all, * worst, 1 on an event loop; last: del on "
            "MainThread (event loop)",
            "*holder.pop()  # the release waits ~1 s: the loop is blocked",
            "*finding [[]blocking-release-on-event-loop[]] at *test_blocking_suite.py:*",
            "*fix: await handletrace.adispose(recognizer) before dropping it*",
            "handletrace: the SDK work of 1 test blocked an event loop (* s in all; see the "
            "handletrace section with -rA, fail such tests with "
            "--handletrace-max-blocking=SECONDS)",
        ]
    )


def test_max_blocking_fails_a_test_whose_sdk_work_blocked_its_loop_longer(
    pytester: pytest.Pytester,
) -> None:
    """--handletrace-max-blocking=0.2 fails the test whose teardown held its loop ~1 s, as
    BLOCKED with a headline; the marker's max_blocking=30 lets another test pass."""
    make_blocking_suite(
        pytester,
        """
        def test_blocks(service):
            drop_on_a_loop(service)

        @pytest.mark.handletrace(max_blocking=30)
        def test_blocks_within_its_limit(service):
            drop_on_a_loop(service)

        def test_blocks_nothing():
            pass
        """,
    )
    result = run(pytester, "--handletrace", "--handletrace-max-blocking=0.2", "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_blocks BLOCKED*",
            "*::test_blocks_within_its_limit PASSED*",
            "*::test_blocks_nothing PASSED*",
            "handletrace: event loop blocked * s by this test's SDK work (more than "
            "max_blocking=0.2 s): see the blocking part of the handletrace section",
            "*- handletrace -*",
            "blocking: 1 slow release at 1 site*",
            "*= handletrace: 1 test blocked its event loop longer than max_blocking =*",
            "test_blocking_suite.py::test_blocks: * s",
            "handletrace: the SDK work of 1 test blocked an event loop within max_blocking (* s "
            "in all)",
        ]
    )


def test_a_test_that_blocked_nothing_gets_no_blocking_section(pytester: pytest.Pytester) -> None:
    """Without blocking, a passed test has no handletrace section, even with a limit of 0."""
    make_suite(pytester, "def test_clean():\n    transcriber()\n")
    result = run(pytester, "--handletrace", "--handletrace-max-blocking=0", "-rA")
    result.assert_outcomes(passed=1)
    output = result.stdout.str()
    assert "blocking:" not in output and "- handletrace -" not in output, output


@pytest.mark.parametrize("bad", [-1, "1", float("nan"), True])
def test_invalid_max_blocking_marker_argument_stops_the_run(
    pytester: pytest.Pytester, bad: object
) -> None:
    """max_blocking must be a number of seconds of 0 or more (or None)."""
    make_suite(
        pytester,
        f"""
        @pytest.mark.handletrace(max_blocking={bad!r})
        def test_bad():
            pass
        """.replace("nan", "float('nan')"),
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: handletrace: invalid @pytest.mark.handletrace(...) on "
            "test_suite.py::test_bad: max_blocking must be None or a number of seconds of 0 or "
            "more, such as 0.5, got *"
        ]
    )


def test_invalid_max_blocking_option_names_the_option(pytester: pytest.Pytester) -> None:
    """A bad --handletrace-max-blocking stops the run naming the option and the value."""
    make_suite(pytester, "def test_x():\n    pass\n")
    result = run(pytester, "--handletrace-max-blocking=soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: handletrace: invalid value 'soon' from command line option "
            "--handletrace-max-blocking: expected a number of seconds of 0 or more, such as 0.5"
        ]
    )


def test_ini_max_blocking_applies_and_the_marker_wins(pytester: pytest.Pytester) -> None:
    """handletrace_max_blocking in the ini file is the limit; a marker replaces it."""
    pytester.makeini("[pytest]\nhandletrace_max_blocking = 0.2\n")
    make_blocking_suite(
        pytester,
        """
        @pytest.mark.handletrace
        def test_blocks(service):
            drop_on_a_loop(service)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    assert "event loop blocked" in result.stdout.str()


def test_the_leak_section_of_a_test_that_also_blocked_has_its_blocking_part(
    pytester: pytest.Pytester,
) -> None:
    """A test that leaks and blocks its loop fails as LEAKED; its section reports the leak
    and, after it, what the test blocked (not what other tests did)."""
    make_blocking_suite(
        pytester,
        """
        import azure.cognitiveservices.speech as speechsdk

        KEEP = []

        def test_blocks_first(service):
            drop_on_a_loop(service)

        def test_leaks_and_blocks(service):
            KEEP.append(speechsdk.SpeechConfig(subscription="dummy", region="westus"))
            drop_on_a_loop(service)
        """,
    )
    result = run(pytester, "--handletrace", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_leaks_and_blocks LEAKED*",
            "handletrace: 2 native handles created by this test are still alive after it ended*",
            "*- handletrace -*",
            "#1  2 handles created at *test_blocking_suite.py:* in test_leaks_and_blocks",
            "blocking: 1 slow release at 1 site, * in all, * worst; event loops blocked *",
        ]
    )
