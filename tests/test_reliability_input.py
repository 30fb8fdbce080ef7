"""Reliability: bad input never ends in a traceback.

Property-based (hypothesis): environment variable values, command-line arguments, and
malformed or corrupt report files given to ``handletrace report``. Each gives a clear message
(one per bad value) and a usage exit code, or works; none raises.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import handletrace
from handletrace import _env, cli
from handletrace._env import EnvSettings, settings_from_env

from . import sdk_objects

VARIABLES = {
    _env.ENV_ENABLE: "enabled",
    _env.ENV_STACK_DEPTH: "stack_depth",
    _env.ENV_STACK_SAMPLE: "stack_sample",
    _env.ENV_KINDS: "kinds",
    _env.ENV_REPORT: "report",
    _env.ENV_REPORT_FORMAT: "report_format",
    _env.ENV_METRICS: "metrics",
    _env.ENV_STALE_AFTER: "stale_after",
}
DEFAULTS = EnvSettings()

# Environment values cannot hold NUL; anything else can reach the process.
env_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
near_miss = st.sampled_from(
    ["", " ", "1", "0", "-1", "257", "16", "+3", "1e3", "0x10", "١", "true", "TRUE ", "nope",
     "json", "text", "html", "xml", "otel", "none", "all", "recognizer,property_bag", "a,,b",
     "stderr", "out.json", "out.html", "\t\n", "2.5", "300", "nan", "inf", "-0.5", "1e-3"]
)  # fmt: skip
env_value = st.one_of(near_miss, env_text)
environments = st.dictionaries(st.sampled_from(sorted(VARIABLES)), env_value)


def problems_naming(problems: List[str], variable: str) -> List[str]:
    return [p for p in problems if p.startswith(f"handletrace: ignoring {variable}=")]


@settings(max_examples=300, deadline=None)
@given(variable=st.sampled_from(sorted(VARIABLES)), value=env_value)
def test_each_env_value_is_used_or_rejected_with_exactly_one_message(
    variable: str, value: str
) -> None:
    """One variable: never raises; a rejected value gives one message and the default."""
    result, problems = settings_from_env({variable: value})
    field = VARIABLES[variable]
    assert len(problems) <= 1
    if problems:
        assert problems_naming(problems, variable) == problems
        assert repr(value) in problems[0]
        assert getattr(result, field) == getattr(DEFAULTS, field)


@settings(max_examples=300, deadline=None)
@given(environ=environments)
def test_env_variables_are_validated_independently(environ: Dict[str, str]) -> None:
    """Several variables: the messages are those each value gives alone, one per bad value."""
    result, problems = settings_from_env(environ)
    expected: List[str] = []
    for variable, value in environ.items():
        alone, alone_problems = settings_from_env({variable: value})
        expected.extend(alone_problems)
        field = VARIABLES[variable]
        if variable != _env.ENV_REPORT_FORMAT:  # its default follows HANDLETRACE_REPORT
            assert getattr(result, field) == getattr(alone, field)
    assert sorted(problems) == sorted(expected)


def _whole_number_up_to(value: str, high: int) -> bool:
    text = value.strip()
    return text.isascii() and text.isdigit() and int(text) <= high


@settings(max_examples=300, deadline=None)
@given(value=env_value)
@example(value="0\x1f")  # str.strip() removes the separator, int() does not
def test_stack_depth_is_accepted_exactly_when_it_is_a_whole_number_up_to_256(value: str) -> None:
    """HANDLETRACE_STACK_DEPTH: ASCII digits from 0 to 256 (blanks around) and nothing else."""
    result, problems = settings_from_env({_env.ENV_STACK_DEPTH: value})
    accepted = _whole_number_up_to(value, 256)
    assert (problems == []) == accepted, (value, problems)
    assert result.stack_depth == (int(value.strip()) if accepted else DEFAULTS.stack_depth)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(env_value, st.integers(-3, 2**40).map(str)))
def test_stack_sample_is_accepted_exactly_when_the_hooks_can_hold_it(value: str) -> None:
    """HANDLETRACE_STACK_SAMPLE: ASCII digits from 0 to 2**31 - 1 and nothing else."""
    result, problems = settings_from_env({_env.ENV_STACK_SAMPLE: value})
    accepted = _whole_number_up_to(value, 2**31 - 1)
    assert (problems == []) == accepted, (value, problems)
    assert result.stack_sample == (int(value.strip()) if accepted else DEFAULTS.stack_sample)


def test_bad_env_values_at_startup_warn_once_each_and_the_program_runs(tmp_path: Path) -> None:
    """HANDLETRACE=1 with every other variable bad: one warning each, exit 0, report printed."""
    script = tmp_path / "program.py"
    script.write_text(
        textwrap.dedent(
            """
            import azure.cognitiveservices.speech as speechsdk
            config = speechsdk.SpeechConfig(subscription="not-a-key", region="westus")
            print("ran")
            """
        )
    )
    bad = {
        _env.ENV_STACK_DEPTH: "ünïcode",
        _env.ENV_STACK_SAMPLE: "-5",
        _env.ENV_KINDS: "recognizer;DROP TABLE",
        _env.ENV_REPORT_FORMAT: "yaml",
        _env.ENV_METRICS: "prometheus",
        _env.ENV_STALE_AFTER: "soon",
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    environment.update({_env.ENV_ENABLE: "1", **bad})
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran\n"
    warnings = [line for line in result.stderr.splitlines() if "HandleTraceWarning" in line]
    assert sorted(w.split("ignoring ")[1].split("=")[0] for w in warnings) == sorted(bad)
    assert "live native handle" in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr.split("handletrace: 2")[0]


# -- the command line --------------------------------------------------------------------


@contextlib.contextmanager
def in_scratch_directory() -> Iterator[str]:
    """A fresh current directory (fuzzed arguments may name output files)."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            yield scratch
        finally:
            os.chdir(old)


def run_cli(argv: List[str]) -> Tuple[int, str, str]:
    """``cli.main(argv)`` with its output captured; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


OPTION_WORDS = st.sampled_from(
    ["report", "--format", "text", "json", "html", "svg", "xml", "-o", "out.txt", "--output",
     "--fail-on-leak", "-", "--help", "-h", "--version", "--", "-x", "--stack-depth", "--kinds"]
)  # fmt: skip
arguments = st.lists(st.one_of(OPTION_WORDS, env_text), max_size=6)


@settings(max_examples=150, deadline=None)
@given(argv=arguments)
def test_fuzzed_command_lines_exit_with_a_code_and_no_traceback(argv: List[str]) -> None:
    """Any arguments (other than running a program): an int exit code, never a traceback."""
    if argv[:1] in (["run"], ["demo"]):
        argv = ["report", *argv[1:]]
    with in_scratch_directory():
        code, out, err = run_cli(argv)
    assert isinstance(code, int)
    assert code in (0, 2, 3)
    assert "Traceback" not in err


@settings(max_examples=60, deadline=None)
@given(options=st.lists(st.one_of(OPTION_WORDS, env_text), max_size=4))
def test_run_with_fuzzed_options_and_a_missing_program_gives_a_clear_error(
    options: List[str],
) -> None:
    """``handletrace run [fuzzed options] missing.py``: an error line and an exit code."""
    options = [o for o in options if o not in ("-m", "-", "--help", "-h", "--version")]
    with in_scratch_directory():
        code, out, err = run_cli(["run", *options, "/nonexistent/handletrace-missing.py"])
    assert code != 0
    assert err.strip() != ""
    assert "Traceback" not in err


# -- malformed and corrupt report files ----------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | env_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(env_text, children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def valid_report() -> Dict[str, Any]:
    """A real JSON report with groups, handles and a diagnosis."""
    handletrace.install()
    try:
        keep: List[Any] = []
        sdk_objects.make_leaky_transcriber(keep)
        out = io.StringIO()
        handletrace.report(out, "json")
        return json.loads(out.getvalue())
    finally:
        from handletrace._core.state import TRACKER

        TRACKER.reset_defaults()


def render_file(content: bytes) -> Tuple[int, str, str]:
    with in_scratch_directory() as scratch:
        path = Path(scratch) / "report.json"
        path.write_bytes(content)
        return run_cli(["report", str(path)])


def assert_clear_error_or_rendered(code: int, out: str, err: str) -> None:
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1
        assert err.startswith("handletrace report: error: ")
    else:
        assert code == 0
        assert out != ""


@settings(max_examples=200, deadline=None)
@given(data=json_values)
def test_any_json_document_is_rendered_or_rejected_in_one_line(data: Any) -> None:
    """Arbitrary JSON given as a report: one error line and exit code 2 (or it renders)."""
    assert_clear_error_or_rendered(*render_file(json.dumps(data).encode()))


@settings(max_examples=100, deadline=None)
@given(content=st.binary(max_size=200))
def test_corrupt_bytes_are_rejected_in_one_line(content: bytes) -> None:
    """Bytes that are not JSON (or not UTF-8): one error line, exit code 2."""
    try:
        json.loads(content)
    except ValueError:
        code, out, err = render_file(content)
        assert code == 2
        assert_clear_error_or_rendered(code, out, err)


def paths_of(value: Any, prefix: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
    """Every key/index path inside a JSON value."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(paths_of(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(paths_of(item, (*prefix, index)))
    return found


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_valid_report_with_one_field_broken_is_rendered_or_rejected_in_one_line(
    valid_report: Dict[str, Any], data: st.DataObject
) -> None:
    """One value replaced (or removed) anywhere in a real report: renders or one error line."""
    report = json.loads(json.dumps(valid_report))
    path = data.draw(st.sampled_from(paths_of(report)))
    parent = report
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values)
    text = json.dumps(report)
    if data.draw(st.booleans()):
        text = text[: data.draw(st.integers(0, len(text)))]  # truncated file
    assert_clear_error_or_rendered(*render_file(text.encode()))
