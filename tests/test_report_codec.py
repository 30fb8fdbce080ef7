"""The report's JSON codec: field-driven writing and reading, exact keys, precise errors."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

import pytest

import handletrace
from handletrace import Report, ReportError
from handletrace._report import codec

from . import sdk_objects

HELD: List[Any] = []


def make_self_capturing_transcriber() -> None:
    """A transcriber whose transcribed callback captures it: cyclic garbage once dropped."""
    transcriber = sdk_objects.transcriber()

    def on_transcribed(evt: Any) -> None:
        print(transcriber, evt)

    transcriber.transcribed.connect(on_transcribed)


@pytest.fixture
def diagnosed_report(installed: None, no_gc: None) -> Any:
    """A real report with a cycle, a root path, findings, access records and native rows."""
    make_self_capturing_transcriber()
    HELD.append(sdk_objects.recognizer())
    try:
        yield handletrace.build_report(stale_after=3600)
    finally:
        HELD.clear()


def test_report_with_a_diagnosis_round_trips_to_identical_json(diagnosed_report: Report) -> None:
    """to_dict -> JSON -> from_dict -> to_dict gives the same JSON text, key order included."""
    report = diagnosed_report
    groups = report.groups
    assert any(g.cycle for g in groups) and any(g.root_path for g in groups), groups
    assert any(g.findings for g in groups) and any(g.access for g in groups), groups
    assert any(g.signals for g in groups), groups
    assert report.diagnosis is not None and report.native is not None and report.native.rows
    first = json.dumps(report.to_dict(), indent=2)
    loaded = Report.from_dict(json.loads(first))
    assert loaded == report
    second = json.dumps(loaded.to_dict(), indent=2)
    assert second == first


def test_json_keys_come_in_the_documented_order(diagnosed_report: Report) -> None:
    """Top level, summary and group keys are in README order; diagnosis fields follow."""
    data = diagnosed_report.to_dict()
    assert list(data) == [
        "schema",
        "version",
        "generated_at",
        "pid",
        "python",
        "sdk_version",
        "installed",
        "summary",
        "kinds",
        "groups",
        "notes",
        "diagnosis",
        "native",
        "blocking",
    ]
    assert list(data["summary"]) == [
        "live",
        "created",
        "released",
        "released_by_cause",
        "instrumentation_errors",
        "groups",
    ]
    assert data["summary"]["groups"] == len(data["groups"])
    cyclic = next(g for g in data["groups"] if "cycle" in g)
    assert list(cyclic)[:7] == [
        "fingerprint",
        "site",
        "count",
        "kinds",
        "age",
        "traceback",
        "handles",
    ]
    assert list(cyclic["age"]) == ["min", "max"]
    assert cyclic["cycle"]["text"].startswith("ConversationTranscriber -> EventSignal")
    assert list(data["native"]) == [
        "native_total",
        "tracked_total",
        "relative",
        "rows",
        "threads",
        "sockets",
        "per_object",
    ]
    assert list(data["blocking"]) == [
        "threshold",
        "in_flight",
        "sites",
        "findings",
        "total",
        "worst",
        "event_loop",
    ]


def test_group_without_a_diagnosis_writes_no_diagnosis_keys(installed: None) -> None:
    """Diagnosis fields that are empty are left out of a group, not written empty."""
    config = sdk_objects.speech_config()
    data = handletrace.build_report(diagnose=False).to_dict()
    assert list(data["groups"][0]) == [
        "fingerprint",
        "site",
        "count",
        "kinds",
        "age",
        "traceback",
        "handles",
    ]
    assert "diagnosis" not in data and "native" not in data
    del config


def _set(path: str, value: Any) -> Callable[[Dict[str, Any]], None]:
    """A change to a saved report: the value at a path such as ``groups.0.age.min``."""

    def change(data: Dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parents:
            data = data[part]
        data[last] = value  # type: ignore[index]

    return change


def _drop(path: str) -> Callable[[Dict[str, Any]], None]:
    def change(data: Dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parents:
            data = data[part]
        del data[last]  # type: ignore[arg-type]

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _set("groups.0.traceback.0.lineno", "12"),
            "groups[0].traceback[0].lineno should be int, got str",
        ),
        (_set("groups.0.age.min", True), "groups[0].age.min should be float, got bool"),
        (_set("groups.0.age", []), "groups[0].age should be dict, got list"),
        (_set("groups.0.handles.0.parent", 3), "groups[0].handles[0].parent should be str or None"),
        (
            _set("groups.0.cycle.steps.1.lineno", 1.5),
            "groups[0].cycle.steps[1].lineno should be int",
        ),
        (
            _set("summary.released_by_cause.del", "1"),
            "summary.released_by_cause['del'] should be int",
        ),
        (_set("native.rows.0.kinds", ["a", 2]), "native.rows[0].kinds[1] should be str, got int"),
        (_set("notes", "one note"), "notes should be list, got str"),
        (_set("diagnosis.stale_after", "1h"), "diagnosis.stale_after should be float or None"),
        (
            _drop("groups.0.traceback.0.lineno"),
            "not a valid handletrace report (KeyError('lineno')) in groups[0].traceback[0]",
        ),
        (_drop("summary.live"), "not a valid handletrace report (KeyError('live')) in summary"),
        (_drop("groups"), "not a valid handletrace report (KeyError('groups'))"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_malformed_value_is_named_by_its_path(
    diagnosed_report: Report, change: Callable[[Dict[str, Any]], None], message: str
) -> None:
    """A wrong or missing value in a saved report: one ReportError naming where and what."""
    data = copy.deepcopy(diagnosed_report.to_dict())
    data["groups"].sort(key=lambda g: "cycle" not in g)  # the group with a cycle first
    change(data)
    with pytest.raises(ReportError) as error:
        Report.from_dict(data, source="saved.json")
    assert str(error.value).startswith(f"saved.json: {message}"), str(error.value)


def test_optional_keys_of_a_hand_written_report_take_their_defaults(installed: None) -> None:
    """Keys a reader may do without (line, title, parent, summary counts...) load as empty."""
    config = sdk_objects.speech_config()
    data = handletrace.build_report(diagnose=False).to_dict()
    for key in ("created", "released", "released_by_cause", "instrumentation_errors"):
        del data["summary"][key]
    del data["kinds"], data["notes"], data["groups"][0]["site"]
    del data["groups"][0]["handles"][0]["parent"], data["groups"][0]["traceback"][0]["line"]
    data["unknown"] = {"a reader": "ignores it"}
    report = Report.from_dict(data)
    assert (report.created, report.released, report.released_by_cause, report.notes) == (
        0,
        0,
        {},
        (),
    )
    assert report.groups[0].site is None and report.groups[0].handles[0].parent is None
    assert report.groups[0].traceback[0].line == ""
    del config


# -- the codec itself ------------------------------------------------------------------------


class Pair(NamedTuple):
    name: str
    count: int


@dataclass(frozen=True)
class Inner:
    label: str
    score: float = 0.0


@dataclass(frozen=True)
class Outer:
    """Every option of the codec on one type."""

    name: str
    low: int = field(metadata=codec.meta(at="range", key="min"))
    high: int = field(metadata=codec.meta(at="range", key="max"))
    t: float = field(metadata=codec.meta(digits=2, check=(lambda t: t >= 0, "is negative")))
    pairs: Tuple[Pair, ...] = ()
    counts: Tuple[Tuple[str, int], ...] = field(default=(), metadata=codec.meta(pairs=True))
    inner: Optional[Inner] = None
    items: Tuple[Inner, ...] = ()
    table: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    title: str = field(default="", metadata=codec.meta(missing="untitled", what="the title"))
    must: Tuple[str, ...] = field(default=(), metadata=codec.meta(required=True))
    extra: Optional[Inner] = field(default=None, metadata=codec.meta(omit=True))
    notes: Tuple[str, ...] = field(default=(), metadata=codec.meta(omit=True))


CODEC = codec.Codec(derived={Outer: {"range.span": lambda o: o.high - o.low}})


def outer() -> Outer:
    return Outer(
        name="x",
        low=1,
        high=4,
        t=1.23456,
        pairs=(Pair("a", 1),),
        counts=(("b", 2),),
        inner=Inner("i", 0.5),
        items=(Inner("j"),),
        table={"k": {"n": 3}},
        title="T",
        must=("m",),
        extra=Inner("e"),
    )


def test_codec_writes_fields_in_order_with_their_options() -> None:
    """Keys follow the fields; nested objects, pairs, NamedTuples, rounding, derived values."""
    data = CODEC.encode(outer())
    assert json.dumps(data) == json.dumps(
        {
            "name": "x",
            "range": {"min": 1, "max": 4, "span": 3},
            "t": 1.23,
            "pairs": [{"name": "a", "count": 1}],
            "counts": {"b": 2},
            "inner": {"label": "i", "score": 0.5},
            "items": [{"label": "j", "score": 0.0}],
            "table": {"k": {"n": 3}},
            "title": "T",
            "must": ["m"],
            "extra": {"label": "e", "score": 0.0},
        }
    )


def test_codec_reads_back_what_it_wrote() -> None:
    """decode(encode(x)) == x (up to the rounding asked for)."""
    value = outer()
    again = CODEC.decode(Outer, json.loads(json.dumps(CODEC.encode(value))))
    assert again == Outer(**{**value.__dict__, "t": 1.23})
    assert type(again.pairs[0]) is Pair


def test_codec_defaults_missing_and_required() -> None:
    """Absent keys take the default (or ``missing``); a required key must be there."""
    minimal = {"name": "x", "range": {"min": 0, "max": 0}, "t": 0, "must": []}
    value = CODEC.decode(Outer, minimal)
    assert (value.title, value.t, value.table, value.extra) == ("untitled", 0.0, {}, None)
    with pytest.raises(codec.CodecError) as error:
        CODEC.decode(Outer, {k: v for k, v in minimal.items() if k != "must"})
    assert (error.value.missing, error.value.path) == ("must", [])


def test_codec_errors_say_where_and_what() -> None:
    """The path, the problem, and the innermost field with its JSON value."""
    data = CODEC.encode(outer())
    data["items"][0]["score"] = "high"
    with pytest.raises(codec.CodecError) as error:
        CODEC.decode(Outer, data)
    assert str(error.value) == "items[0].score should be float, got str"
    assert (error.value.field, error.value.field_value) == ("score", "high")
    data = CODEC.encode(outer())
    data["t"] = -1
    with pytest.raises(codec.CodecError, match=r"^t -1 is negative$"):
        CODEC.decode(Outer, data)
    data["t"], data["title"] = 0, 5
    with pytest.raises(codec.CodecError) as error:
        CODEC.decode(Outer, data)
    assert error.value.field == "the title"


def test_codec_refuses_optional_fields_before_required_ones() -> None:
    """A field left out while default must come after every field always written."""

    @dataclass(frozen=True)
    class Bad:
        extra: str = field(default="", metadata=codec.meta(omit=True))
        name: str = ""

    with pytest.raises(TypeError, match="fields that may be left out come last"):
        codec.Codec().encode(Bad())
