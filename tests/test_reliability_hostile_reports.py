"""Reliability: ``handletrace report`` on hostile JSON ends with one error line and exit code 2,
never a traceback (issue #18.7), and refuses a file over its size limit.

Before: a 5000-digit integer anywhere raised CPython's integer-conversion ``ValueError``; a
4000-digit integer where a float goes raised ``OverflowError``; ``generated_at`` (and a
timeline's ``started_at``) of inf, nan, 1e300 or -1e18 crashed the HTML page on the date;
a 100 MB report took 9-11 s and 0.5-0.7 GB.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest

import handletrace
from handletrace._report.model import Report
from handletrace.cli import main
from handletrace.errors import ReportError

FORMATS = ("text", "json", "html")
BIG = "9" * 5000
#: Values no handletrace file holds, as JSON text.
HOSTILE = {
    "5000 digits": BIG,
    "-5000 digits": "-" + BIG,
    "4000 digits": "9" * 4000,
    "Infinity": "Infinity",
    "NaN": "NaN",
    "1e300": "1e300",
    "[1]": "[1]",
}
MARK = "__hostile__"


@pytest.fixture(scope="module")
def saved_report() -> Iterator[dict]:
    """A real report (JSON form): one live push stream, diagnosed."""
    handletrace.install()
    stream = speechsdk.audio.PushAudioInputStream()
    out = io.StringIO()
    handletrace.report(out, "json")
    handletrace.uninstall()
    del stream
    yield json.loads(out.getvalue())


TIMELINE = {
    "schema": "handletrace.timeline",
    "version": 1,
    "label": "program.py",
    "started_at": 1796690977.0,
    "interval": 0.1,
    "rss_source": "/proc/self/statm",
    "errors": 0,
    "marks": [{"t": 0.05, "label": "phase"}],
    "samples": [
        {"t": 0.0, "live": {}, "rss": 30801920},
        {"t": 0.1, "live": {"audio_stream": 3}, "rss": 42905600},
    ],
}


def with_value(document: Any, path: Tuple[Any, ...], raw: str) -> str:
    """``document`` as JSON text with the value at ``path`` replaced by the JSON text ``raw``."""
    copy = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = MARK
    return json.dumps(copy).replace(json.dumps(MARK), raw)


def render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fmt: str, *options: str
) -> Tuple[int, List[str]]:
    """``handletrace report`` of ``text`` (as a file) in ``fmt``: exit code, stderr lines."""
    source = tmp_path / "hostile.json"
    source.write_text(text, encoding="utf-8")
    code = main(
        ["report", str(source), "--format", fmt, "-o", str(tmp_path / f"out.{fmt}"), *options]
    )
    return code, capsys.readouterr().err.splitlines()


def assert_one_error(code: int, lines: List[str], *words: str) -> None:
    assert code == 2 and len(lines) == 1, (code, lines)
    assert lines[0].startswith("handletrace report: error: "), lines
    for word in words:
        assert word in lines[0], lines


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "path",
    [("pid",), ("summary", "live"), ("groups", 0, "count"), ("notes",), ("generated_at",)],
    ids=lambda path: ".".join(map(str, path)),
)
def test_a_5000_digit_integer_is_one_error_line(
    saved_report: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: Any, fmt: str
) -> None:
    """A 5000-digit integer (CPython refuses to convert it) at any place: one error line
    saying so, exit 2."""
    code, lines = render(tmp_path, capsys, with_value(saved_report, path, BIG), fmt)
    assert_one_error(code, lines, "5000 digits")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", ["Infinity", "NaN", "-Infinity", "1e300", "-1e18", "1e30"])
def test_a_generated_at_that_is_no_time_is_one_error_line(
    saved_report: dict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    value: str,
    fmt: str,
) -> None:
    """``generated_at`` inf, nan, 1e300 or -1e18: one error line, exit 2 (the HTML page
    raised on the date)."""
    code, lines = render(tmp_path, capsys, with_value(saved_report, ("generated_at",), value), fmt)
    assert_one_error(code, lines)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_float_of_4000_digits_is_one_error_line(
    saved_report: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """A 4000-digit integer where a float goes (a handle's age; before, OverflowError): one
    error line, exit 2."""
    text = with_value(saved_report, ("groups", 0, "age", "max"), "9" * 4000)
    code, lines = render(tmp_path, capsys, text, fmt)
    assert_one_error(code, lines, "4000 digits")


@pytest.mark.parametrize("value", [10**400, -(10**400), float("inf"), float("nan")])
def test_report_from_dict_refuses_a_float_out_of_range(saved_report: dict, value: Any) -> None:
    """``Report.from_dict`` (data not from a file) refuses an integer too large for a float
    and a non-finite float with a ReportError naming the field."""
    data = json.loads(json.dumps(saved_report))
    data["groups"][0]["age"]["max"] = value
    with pytest.raises(ReportError) as caught:
        Report.from_dict(data, source="data")
    assert "groups[0]" in str(caught.value), caught.value


@pytest.mark.parametrize("fmt", FORMATS)
def test_notes_that_are_not_strings_are_one_error_line(
    saved_report: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """``notes: [1]``: one error line naming ``notes[0]``, exit 2."""
    code, lines = render(tmp_path, capsys, with_value(saved_report, ("notes",), "[1]"), fmt)
    assert_one_error(code, lines, "notes[0]")


@pytest.mark.parametrize("fmt", [*FORMATS, "svg"])
@pytest.mark.parametrize("value", ["Infinity", "NaN", "1e30", BIG])
def test_a_timeline_started_at_that_is_no_time_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, fmt: str
) -> None:
    """A timeline's ``started_at`` inf, nan, 1e30 or of 5000 digits: one error line, exit 2."""
    code, lines = render(tmp_path, capsys, with_value(TIMELINE, ("started_at",), value), fmt)
    assert_one_error(code, lines)


def leaves(node: Any, path: Tuple[Any, ...] = ()) -> Iterator[Tuple[Any, ...]]:
    """Every place in a JSON document (the first two items of each list)."""
    if path:
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:2]):
            yield from leaves(value, (*path, index))


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_value_anywhere_renders_or_is_one_error_line(
    saved_report: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Each hostile value at each place of a real report and of a timeline: the text
    rendering succeeds (the value is allowed there) or is one error line and exit 2."""
    wrong = []
    for document in (saved_report, TIMELINE):
        for path in leaves(document):
            text = with_value(document, path, HOSTILE[name])
            try:
                code, lines = render(tmp_path, capsys, text, "text")
            except BaseException as exc:  # the failure this test is for: say where
                wrong.append((path, f"raised {type(exc).__name__}: {str(exc)[:80]}"))
                continue
            if not ((code, lines) == (0, []) or (code == 2 and len(lines) == 1)):
                wrong.append((path, f"exit {code}: {lines[:3]}"))
    assert wrong == [], wrong


def test_a_file_over_the_size_limit_is_refused_with_the_limit_and_the_option(
    saved_report: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report larger than --max-size is refused before it is read: one line naming the
    limit and how to lift it; --max-size 0 reads it."""
    text = json.dumps(saved_report)
    assert len(text) > 1000
    code, lines = render(tmp_path, capsys, text, "text", "--max-size", "0.001")
    assert_one_error(code, lines, "0.001 MB", "--max-size")
    code, lines = render(tmp_path, capsys, text, "text", "--max-size", "0")
    assert (code, lines) == (0, []), lines


def test_the_default_size_limit_is_50_mb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 51 MB file is refused by default (a sparse file: nothing is written or read)."""
    source = tmp_path / "huge.json"
    with open(source, "wb") as out:
        out.truncate(51_000_000)
    code = main(["report", str(source)])
    lines = capsys.readouterr().err.splitlines()
    assert_one_error(code, lines, "50 MB", "--max-size")


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "ten"])
def test_a_bad_max_size_is_a_usage_error(capsys: pytest.CaptureFixture[str], value: str) -> None:
    """--max-size takes a number of MB, at least 0: anything else is a usage error."""
    code = main(["report", "x.json", "--max-size", value])
    err = capsys.readouterr().err
    assert code == 2 and "is not a size in MB" in err, err
