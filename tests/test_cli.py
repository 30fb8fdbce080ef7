"""The command line: ``main([...])`` in-process, and ``python -m handletrace`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest

from handletrace import Report
from handletrace._report.text import format_text
from handletrace._report.timeline import Timeline, summarize
from handletrace.cli import EXIT_LEAKS, EXIT_USAGE, main

PROGRAMS = Path(__file__).parent / "programs"
LEAKY = str(PROGRAMS / "leaky_service.py")
FIXED = str(PROGRAMS / "fixed_service.py")
ROOT = Path(__file__).parent.parent


def script(tmp_path: Path, source: str, name: str = "prog.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m handletrace ARGS``; the HANDLETRACE* variables come only from env_extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "handletrace", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture(autouse=True)
def _no_handletrace_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`handletrace run` applies the HANDLETRACE_* variables: in-process runs see none."""
    kept = ("HANDLETRACE_EXPECT_EXTENSION", "HANDLETRACE_NO_EXTENSIONS")
    for name in list(os.environ):
        if name.startswith("HANDLETRACE") and name not in kept:
            monkeypatch.delenv(name)


# -- run: the report ---------------------------------------------------------------------------


def test_run_prints_the_report_of_a_leaky_program_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`handletrace run leaky.py` runs it, prints the leak report to stderr, exits 0."""
    code = main(["run", LEAKY, "3", "0"])
    out, err = capsys.readouterr()
    assert code == 0
    assert out == "handled 3 requests\n"
    assert err.startswith("handletrace: 6 live native handles in 1 group (pid ")
    assert "    3 x recognizer    ConversationTranscriber\n" in err
    assert f'File "{LEAKY}", line 19, in handle_request' in err
    assert "note: 6 of 6 handles were cyclic garbage" in err


def test_run_fail_on_leak_exits_3_for_the_leaky_program() -> None:
    """--fail-on-leak turns live handles at exit into exit code 3."""
    assert main(["run", "--report", "none", "--fail-on-leak", LEAKY, "3", "0"]) == EXIT_LEAKS


def test_run_fail_on_leak_exits_0_for_the_fixed_program(capsys: pytest.CaptureFixture[str]) -> None:
    """The fixed program leaves nothing alive: exit 0 and a clean report."""
    assert main(["run", "--fail-on-leak", FIXED, "3", "0"]) == 0
    assert capsys.readouterr().err == (
        "handletrace: no live native handles (created 24, released 24 (del 24))\n"
    )


def test_run_writes_a_json_report_that_loads_back(tmp_path: Path) -> None:
    """--report x.json writes the versioned JSON report."""
    out = tmp_path / "report.json"
    assert main(["run", "--report", str(out), LEAKY, "2", "0"]) == 0
    report = Report.from_dict(json.loads(out.read_text()), source=str(out))
    assert report.live == 4
    assert [k for k, _, _ in report.groups[0].kinds] == ["recognizer", "property_bag"]


def test_run_writes_an_html_report(tmp_path: Path) -> None:
    """--report x.html writes the self-contained HTML page."""
    out = tmp_path / "report.html"
    assert main(["run", "--report", str(out), LEAKY, "2", "0"]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "4 live native handles in 1 group" in page


def test_run_report_to_stdout_comes_after_the_program_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--report stdout appends the report to the program's own output."""
    assert main(["run", "--report", "stdout", FIXED, "1", "0"]) == 0
    assert capsys.readouterr().out == (
        "handled 1 requests\nhandletrace: no live native handles (created 8, released 8 (del 8))\n"
    )


def test_module_global_sdk_object_is_still_reachable_not_cyclic_garbage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The program's globals are alive at the report, as under python at exit."""
    path = script(
        tmp_path,
        """
        import azure.cognitiveservices.speech as speechsdk

        CONFIG = speechsdk.SpeechConfig(subscription="dummy", region="westus")

        def main():
            return CONFIG

        main()
        """,
    )
    assert main(["run", path]) == 0
    err = capsys.readouterr().err
    assert "handletrace: 2 live native handles" in err
    assert "note: 2 of 2 handles are still reachable after gc.collect()" in err
    assert "cyclic garbage" not in err


# -- run: running the program as python would ---------------------------------------------------


def test_run_passes_arguments_and_main_semantics(tmp_path: Path) -> None:
    """The program sees its own argv, __name__ == '__main__', __file__ and sys.path[0]."""
    out = tmp_path / "seen.json"
    path = script(
        tmp_path,
        f"""
        import json, sys
        json.dump(
            {{"argv": sys.argv, "name": __name__, "file": __file__, "path0": sys.path[0],
              "main": sys.modules["__main__"].__dict__ is globals()}},
            open({str(out)!r}, "w"),
        )
        """,
    )
    assert main(["run", "--report", "none", path, "a", "--report", "-x"]) == 0
    seen = json.loads(out.read_text())
    assert seen == {
        "argv": [path, "a", "--report", "-x"],
        "name": "__main__",
        "file": path,
        "path0": str(tmp_path),
        "main": True,
    }


def test_run_restores_argv_and_main_module() -> None:
    """After main() returns, this process's sys.argv and __main__ are as before."""
    argv, main_module = list(sys.argv), sys.modules["__main__"]
    main(["run", "--report", "none", FIXED, "1", "0"])
    assert sys.argv == argv
    assert sys.modules["__main__"] is main_module


def test_run_module_with_dash_m(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """run -m module runs it as __main__ with the current directory importable."""
    (tmp_path / "mymod.py").write_text(
        "import sys\nprint(__name__, sys.argv[1:], sys.argv[0].endswith('mymod.py'))\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--report", "none", "-m", "mymod", "x", "-v"]) == 0
    assert capsys.readouterr().out == "__main__ ['x', '-v'] True\n"


def test_run_package_with_dash_m_runs_its_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """run -m package runs package/__main__.py, like python -m."""
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("print('main of', __package__)\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--report", "none", "-m", "mypkg"]) == 0
    assert capsys.readouterr().out == "main of mypkg\n"


def test_run_exits_with_the_programs_exit_code(tmp_path: Path) -> None:
    """sys.exit(7) in the program makes handletrace run exit 7."""
    assert main(["run", "--report", "none", script(tmp_path, "import sys\nsys.exit(7)\n")]) == 7


def test_run_exit_with_a_message_prints_it_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sys.exit('message') prints the message to stderr and exits 1, as python does."""
    path = script(tmp_path, "import sys\nsys.exit('bad input')\n")
    assert main(["run", "--report", "none", path]) == 1
    assert capsys.readouterr().err == "bad input\n"


def test_run_uncaught_exception_prints_the_traceback_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An uncaught exception prints a python-like traceback (no handletrace frames): exit 1."""
    path = script(tmp_path, "def f():\n    raise ValueError('boom')\n\nf()\n")
    assert main(["run", "--report", "none", path]) == 1
    err = capsys.readouterr().err
    # Python 3.13 underlines the failing expression with a line of ~ and ^: not compared.
    lines = [line for line in err.splitlines() if line.strip(" ~^")]
    assert lines == [
        "Traceback (most recent call last):",
        f'  File "{path}", line 4, in <module>',
        "    f()",
        f'  File "{path}", line 2, in f',
        "    raise ValueError('boom')",
        "ValueError: boom",
    ]


def test_run_fail_on_leak_keeps_a_failing_programs_own_code(tmp_path: Path) -> None:
    """When the program itself fails, its exit code wins over the leak exit code."""
    path = script(
        tmp_path,
        """
        import sys
        import azure.cognitiveservices.speech as speechsdk
        KEEP = speechsdk.SpeechConfig(subscription="dummy", region="westus")
        sys.exit(5)
        """,
    )
    assert main(["run", "--report", "none", "--fail-on-leak", path]) == 5


def test_run_syntax_error_is_reported_like_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A program that does not compile fails with its SyntaxError and exit code 1."""
    path = script(tmp_path, "def broken(:\n")
    assert main(["run", "--report", "none", path]) == 1
    assert "SyntaxError" in capsys.readouterr().err


def test_run_waits_for_the_programs_threads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A non-daemon thread still running when the main code ends is waited for."""
    path = script(
        tmp_path,
        """
        import threading, time
        def work():
            time.sleep(0.2)
            print("thread done")
        threading.Thread(target=work).start()
        """,
    )
    assert main(["run", "--report", "stdout", path]) == 0
    out = capsys.readouterr().out
    assert out.index("thread done") < out.index("handletrace:")


# -- run: usage errors ---------------------------------------------------------------------------


def test_run_missing_script_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A script that does not exist: exit 2 with one line naming it."""
    assert main(["run", "/nonexistent/prog.py"]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "handletrace run: error: can't open file '/nonexistent/prog.py': no such file\n"
    )


def test_run_unknown_module_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    """-m with a module that cannot be found: exit 2 with one line."""
    assert main(["run", "-m", "no_such_module_xyz"]) == EXIT_USAGE
    assert capsys.readouterr().err == "handletrace run: error: No module named no_such_module_xyz\n"


def test_run_unknown_kind_names_the_closest_and_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--kinds with a misspelt kind is refused in one line: the closest kind, then the list."""
    assert main(["run", "--kinds", "recogniser", FIXED]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(
        "handletrace run: error: --kinds: unknown handle kind 'recogniser' (did you mean "
        "'recognizer'?); known kinds: audio_config, "
    ), err
    assert err.count("\n") == 1, err


def test_run_invalid_stack_depth_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An out-of-range --stack-depth is refused before the program runs."""
    assert main(["run", "--stack-depth", "999", FIXED]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "handletrace run: error: stack_depth must be an integer from 0 to 256, got 999\n"
    )


def test_run_without_a_program_prints_the_two_forms_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`handletrace run` alone: the two ways to call it and one error line, exit 2."""
    assert main(["run"]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "usage: handletrace run [options] script.py [args...]\n"
        "       handletrace run [options] -m module [args...]\n"
        "handletrace run: error: no program to run (handletrace run --help lists the options)\n"
    )


def test_run_dash_m_without_a_module_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`handletrace run -m` alone says the module is missing: exit 2."""
    assert main(["run", "-m"]) == EXIT_USAGE
    assert capsys.readouterr().err.endswith(
        "handletrace run: error: no module to run (handletrace run --help lists the options)\n"
    )


def test_run_bad_option_value_shows_the_short_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """An option argparse refuses: the two forms (not every option) and argparse's line."""
    assert main(["run", "--interval", "soon", FIXED]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "usage: handletrace run [options] script.py [args...]",
        "       handletrace run [options] -m module [args...]",
        "handletrace run: error: argument --interval: invalid float value: 'soon'",
    ], err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`handletrace` alone: usage and exit 2."""
    assert main([]) == EXIT_USAGE
    assert capsys.readouterr().err.endswith(
        "handletrace: error: a command is required (run, report)\n"
    )


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """--help of a subcommand is its class docstring."""
    assert main(["run", "--help"]) == 0
    assert "Run a Python program with native-handle tracking from its first line" in (
        capsys.readouterr().out
    )


# -- run: timeline -------------------------------------------------------------------------------


def _timeline_of(tmp_path: Path, program: str, requests: str) -> Timeline:
    out = tmp_path / "timeline.json"
    assert (
        main(
            [
                "run",
                "--report",
                "none",
                "--timeline",
                str(out),
                "--interval",
                "5",
                program,
                requests,
                "0.01",
            ]
        )
        == 0
    )
    return Timeline.from_dict(json.loads(out.read_text()))


def test_timeline_of_the_leaky_program_grows(tmp_path: Path) -> None:
    """Live handles climb to two per request and the trend is 'growing'."""
    timeline = _timeline_of(tmp_path, LEAKY, "30")
    summary = summarize(timeline)
    assert summary.trend == "growing"
    assert summary.live_last == 60
    assert timeline.series("recognizer")[-1] == 30
    recognizers = timeline.series("recognizer")
    assert all(a <= b for a, b in zip(recognizers, recognizers[1:]))  # never goes down
    assert summary.samples >= 10


def test_timeline_of_the_fixed_program_is_flat(tmp_path: Path) -> None:
    """Live handles stay at one request's worth at most and end at zero: 'flat'."""
    summary = summarize(_timeline_of(tmp_path, FIXED, "30"))
    assert summary.trend == "flat"
    assert summary.live_last == 0
    assert summary.live_peak <= 8  # one request's handles, caught mid-request
    assert summary.samples >= 10


@pytest.mark.parametrize(
    ("suffix", "start"), [(".svg", "<svg"), (".html", "<!DOCTYPE html>"), (".txt", "")]
)
def test_timeline_file_format_follows_its_extension(
    tmp_path: Path, suffix: str, start: str
) -> None:
    """--timeline x.svg / x.html / x.txt write the chart in that format."""
    out = tmp_path / f"timeline{suffix}"
    assert main(["run", "--report", "none", "--timeline", str(out), LEAKY, "3", "0"]) == 0
    text = out.read_text()
    assert text.startswith(start)
    if suffix == ".txt":
        assert "Live native handles over" in text


def test_timeline_to_stderr_draws_the_terminal_chart_without_colour(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--timeline stderr draws the chart; captured stderr is not a TTY: no escape codes."""
    assert main(["run", "--report", "none", "--timeline", "stderr", LEAKY, "3", "0"]) == 0
    err = capsys.readouterr().err
    assert "Live native handles over" in err
    assert "trend: growing" in err
    assert "\x1b[" not in err


# -- report --------------------------------------------------------------------------------------


@pytest.fixture
def saved_report(tmp_path: Path) -> Path:
    out = tmp_path / "saved.json"
    assert main(["run", "--report", str(out), LEAKY, "2", "0"]) == 0
    return out


def test_report_renders_a_saved_report_as_text(
    saved_report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`handletrace report x.json` prints the same text the run would have printed."""
    assert main(["report", str(saved_report)]) == 0
    expected = format_text(Report.from_dict(json.loads(saved_report.read_text())))
    assert capsys.readouterr().out == expected


def test_report_renders_html_to_a_file(saved_report: Path, tmp_path: Path) -> None:
    """-o x.html writes the HTML page."""
    out = tmp_path / "page.html"
    assert main(["report", str(saved_report), "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_report_json_round_trips(saved_report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--format json writes the same report data back."""
    assert main(["report", str(saved_report), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(saved_report.read_text())


def test_report_fail_on_leak(saved_report: Path) -> None:
    """report --fail-on-leak exits 3 for a report with live handles."""
    assert (
        main(["report", "--fail-on-leak", "--format", "json", "-o", os.devnull, str(saved_report)])
        == EXIT_LEAKS
    )


def test_report_renders_a_saved_timeline_as_svg(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A timeline JSON file renders as SVG (the report command reads both)."""
    saved = tmp_path / "t.json"
    assert main(["run", "--report", "none", "--timeline", str(saved), LEAKY, "2", "0"]) == 0
    capsys.readouterr()
    assert main(["report", str(saved), "--format", "svg"]) == 0
    assert capsys.readouterr().out.startswith("<svg")


def _bad_files() -> List[tuple]:
    valid = {"schema": "handletrace.report", "version": 1}
    return [
        ("not_json", "{not json", "not valid JSON (line 1, column 2: Expecting property name"),
        ("truncated", '{"schema": "handletrace.report", "vers', "not valid JSON"),
        ("empty", "", "not valid JSON (line 1, column 1: Expecting value)"),
        ("a_list", "[1, 2]", "the top level should be dict, got list"),
        ("other_schema", '{"schema": "something.else"}', "not a handletrace report"),
        (
            "future_version",
            json.dumps({**valid, "version": 99}),
            "report version 99 is not supported",
        ),
        (
            "missing_fields",
            json.dumps(valid),
            "not a valid handletrace report (KeyError('summary'))",
        ),
        (
            "bad_timeline",
            '{"schema": "handletrace.timeline", "version": 1, "samples": [{"t": "x"}]}',
            "not a valid handletrace timeline",
        ),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"), _bad_files(), ids=[c[0] for c in _bad_files()]
)
def test_report_malformed_file_is_one_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, message: str
) -> None:
    """A file that is not a valid saved report gives one line naming it: exit 2, no traceback."""
    path = tmp_path / f"{name}.json"
    path.write_text(content)
    assert main(["report", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"handletrace report: error: {path}: ")
    assert message in err
    assert err.count("\n") == 1


def test_report_binary_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes that are not UTF-8 are refused in one line."""
    path = tmp_path / "blob.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["report", str(path)]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        f"handletrace report: error: {path}: not a text file (not UTF-8)\n"
    )


def test_report_missing_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file: exit 2, one line."""
    path = tmp_path / "nope.json"
    assert main(["report", str(path)]) == EXIT_USAGE
    assert capsys.readouterr().err == f"handletrace report: error: {path}: no such file\n"


def test_report_directory_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory instead of a file: exit 2, one line."""
    assert main(["report", str(tmp_path)]) == EXIT_USAGE
    assert capsys.readouterr().err == f"handletrace report: error: {tmp_path}: is a directory\n"


# -- the console script in a subprocess --------------------------------------------------------


def test_subprocess_run_fail_on_leak_exits_3_with_the_report_on_stderr() -> None:
    """python -m handletrace run --fail-on-leak leaky.py: exit 3, report on stderr."""
    result = run_cli("run", "--fail-on-leak", LEAKY, "2", "0")
    assert result.returncode == EXIT_LEAKS
    assert result.stdout == "handled 2 requests\n"
    assert result.stderr.startswith("handletrace: 4 live native handles in 1 group")


def test_subprocess_run_leaky_without_the_option_exits_0() -> None:
    """Without --fail-on-leak the exit code is the program's: 0."""
    result = run_cli("run", LEAKY, "2", "0")
    assert result.returncode == 0
    assert "4 live native handles" in result.stderr


def test_subprocess_report_of_a_corrupt_file_exits_2_without_traceback(tmp_path: Path) -> None:
    """python -m handletrace report corrupt.json: exit 2, one line, no traceback."""
    path = tmp_path / "corrupt.json"
    path.write_text('{"schema": "handletrace.report", "version": 1, "summary": 3}')
    result = run_cli("report", str(path))
    assert result.returncode == EXIT_USAGE
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_subprocess_run_propagates_a_signal_like_exit_code(tmp_path: Path) -> None:
    """The program's exit status reaches the shell unchanged."""
    result = run_cli("run", "--report", "none", script(tmp_path, "raise SystemExit(42)\n"))
    assert result.returncode == 42


# -- run: saying where things went -------------------------------------------------------------


def test_run_fail_on_leak_with_a_report_file_says_why_it_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--fail-on-leak --report out.json: exit 3 and one stderr line with the count and file."""
    out = tmp_path / "out.json"
    assert main(["run", "--fail-on-leak", "--report", str(out), LEAKY, "2", "0"]) == EXIT_LEAKS
    err = capsys.readouterr().err
    assert err == (
        f"handletrace: 4 live handles in 1 group; report written to {out}; "
        "exit 3 (--fail-on-leak)\n"
    ), err
    assert Report.from_dict(json.loads(out.read_text())).live == 4


def test_run_report_file_says_where_it_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--report out.json without --fail-on-leak: exit 0 and one line saying where it went."""
    out = tmp_path / "out.json"
    assert main(["run", "--report", str(out), FIXED, "1", "0"]) == 0
    assert capsys.readouterr().err == (
        f"handletrace: no live handles; report written to {out}\n"
    )


@pytest.mark.parametrize(
    ("destination", "where"),
    [("none", "no report written (--report none)"), ("stdout", "report on stdout")],
)
def test_run_fail_on_leak_without_a_report_on_stderr_says_why_it_exits_3(
    capsys: pytest.CaptureFixture[str], destination: str, where: str
) -> None:
    """--fail-on-leak with the report on stdout or nowhere: stderr still says why exit 3."""
    assert main(["run", "--fail-on-leak", "--report", destination, LEAKY, "1", "0"]) == EXIT_LEAKS
    assert capsys.readouterr().err == (
        f"handletrace: 2 live handles in 1 group; {where}; exit 3 (--fail-on-leak)\n"
    )


def test_run_report_on_stderr_adds_no_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The report on stderr (the default) says it all: no extra line after it."""
    assert main(["run", "--fail-on-leak", LEAKY, "1", "0"]) == EXIT_LEAKS
    err = capsys.readouterr().err
    assert err.startswith("handletrace: 2 live native handles in 1 group"), err
    assert "report written" not in err and "(--fail-on-leak)" not in err


def test_run_timeline_file_says_where_it_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--timeline t.svg prints where it wrote the chart, as the demo does."""
    out = tmp_path / "t.svg"
    assert main(["run", "--report", "none", "--timeline", str(out), FIXED, "1", "0"]) == 0
    assert capsys.readouterr().err == f"handletrace: timeline (svg) written to {out}\n"
    assert out.read_text().startswith("<svg")


# -- run: the environment --------------------------------------------------------------------


def _report_file(tmp_path: Path) -> Report:
    return Report.from_dict(json.loads((tmp_path / "r.json").read_text()))


def test_subprocess_run_applies_the_stack_depth_from_the_environment(tmp_path: Path) -> None:
    """HANDLETRACE_STACK_DEPTH=1 handletrace run: one frame per creation stack."""
    result = run_cli(
        "run", "--report", str(tmp_path / "r.json"), LEAKY, "1", "0",
        env_extra={"HANDLETRACE_STACK_DEPTH": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames = [len(group.traceback) for group in _report_file(tmp_path).groups]
    assert frames == [1], (frames, result.stderr)


def test_subprocess_run_stack_depth_option_wins_over_the_environment(tmp_path: Path) -> None:
    """--stack-depth 2 wins over HANDLETRACE_STACK_DEPTH=1."""
    result = run_cli(
        "run", "--stack-depth", "2", "--report", str(tmp_path / "r.json"), LEAKY, "1", "0",
        env_extra={"HANDLETRACE_STACK_DEPTH": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [len(g.traceback) for g in _report_file(tmp_path).groups] == [2]


def test_subprocess_run_writes_the_report_the_environment_names(tmp_path: Path) -> None:
    """HANDLETRACE_REPORT=r.json handletrace run: the JSON report is written there."""
    out = tmp_path / "r.json"
    result = run_cli("run", LEAKY, "2", "0", env_extra={"HANDLETRACE_REPORT": str(out)})
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"handletrace: 4 live handles in 1 group; report written to {out}\n"
    assert _report_file(tmp_path).live == 4


def test_subprocess_run_report_option_wins_over_the_environment(tmp_path: Path) -> None:
    """--report stdout wins over HANDLETRACE_REPORT (and its HANDLETRACE_REPORT_FORMAT)."""
    out = tmp_path / "r.json"
    result = run_cli(
        "run", "--report", "stdout", FIXED, "1", "0",
        env_extra={"HANDLETRACE_REPORT": str(out), "HANDLETRACE_REPORT_FORMAT": "html"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(
        "handletrace: no live native handles (created 8, released 8 (del 8))\n"
    ), result.stdout
    assert not out.exists()


def test_subprocess_run_applies_kinds_and_stale_after_from_the_environment(
    tmp_path: Path,
) -> None:
    """HANDLETRACE_KINDS and HANDLETRACE_STALE_AFTER shape what handletrace run reports."""
    path = script(
        tmp_path,
        """
        import time
        import azure.cognitiveservices.speech as speechsdk
        CONFIG = speechsdk.SpeechConfig(subscription="dummy", region="westus")
        time.sleep(0.05)
        """,
    )
    result = run_cli(
        "run", path,
        env_extra={"HANDLETRACE_KINDS": "speech_config", "HANDLETRACE_STALE_AFTER": "0.01"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("handletrace: 1 live native handle in 1 group"), result.stderr
    assert "1 stale (still referenced, and older than" in result.stderr


def test_subprocess_run_enables_metrics_from_the_environment(tmp_path: Path) -> None:
    """HANDLETRACE_METRICS=otel handletrace run: the program runs with metrics enabled."""
    path = script(tmp_path, "import handletrace.metrics\nprint(handletrace.metrics.is_enabled())\n")
    result = run_cli("run", "--report", "none", path, env_extra={"HANDLETRACE_METRICS": "otel"})
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr


def test_subprocess_run_bad_environment_value_warns_once_and_runs(tmp_path: Path) -> None:
    """A bad HANDLETRACE_STACK_DEPTH: one warning naming it, the default used, exit 0."""
    result = run_cli(
        "run", "--report", str(tmp_path / "r.json"), LEAKY, "1", "0",
        env_extra={"HANDLETRACE_STACK_DEPTH": "257"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("HandleTraceWarning") == 1, result.stderr
    assert (
        "handletrace: ignoring HANDLETRACE_STACK_DEPTH='257': expected an integer from 0 to 256; "
        "using the default" in result.stderr
    )
    assert _report_file(tmp_path).live == 2


def test_subprocess_run_under_handletrace_1_keeps_its_own_options_and_report(
    tmp_path: Path,
) -> None:
    """HANDLETRACE=1 handletrace run --stack-depth 2: run's options and report, no second one."""
    result = run_cli(
        "run", "--stack-depth", "2", "--report", str(tmp_path / "r.json"), LEAKY, "1", "0",
        env_extra={"HANDLETRACE": "1", "HANDLETRACE_STACK_DEPTH": "5"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [len(g.traceback) for g in _report_file(tmp_path).groups] == [2]
    assert "live native handles" not in result.stderr, result.stderr  # no at-exit report


# -- demo --------------------------------------------------------------------------------------


def test_demo_command_passes_every_argument_to_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """`handletrace demo ARGS` calls handletrace.cli.demo.run_demo(ARGS), --help included."""
    import types

    seen: List[List[str]] = []
    module = types.ModuleType("handletrace.cli.demo")
    module.run_demo = lambda argv: seen.append(argv) or 5  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "handletrace.cli.demo", module)
    assert main(["demo", "--requests", "3", "--help"]) == 5
    assert seen == [["--requests", "3", "--help"]]


def test_run_in_process_restores_automatic_gc(tmp_path: Path) -> None:
    """A program that turns automatic GC off does not leave it off for the caller of main()."""
    import gc

    assert gc.isenabled()
    main(["run", "--report", "none", script(tmp_path, "import gc\ngc.disable()\n")])
    assert gc.isenabled()
