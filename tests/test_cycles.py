"""Reference cycles and paths drawn from the real objects: text, DOT, SVG, heap scan."""

from __future__ import annotations

import gc
import os
import shutil
import sys
import weakref
from typing import Any, List

import pytest

import handletrace
from handletrace._analysis.heap import EXTERNAL_ROOT, HeapGraph
from handletrace.analysis import PathStep, RefPath, find_cycle, to_dot, to_svg

from . import sdk_objects

SEED_CYCLE = (
    "ConversationTranscriber -> EventSignal (transcribed) -> list -> "
    "function on_transcribed (closure cell 'transcriber') -> ConversationTranscriber"
)
HELD: List[Any] = []  # a module global holding transcribers for the "reachable" tests


def make_seed_leak(segments: List[Any]) -> int:
    """The seed's transcriber closure; returns the line of ``on_transcribed``."""
    transcriber = sdk_objects.transcriber()

    def on_transcribed(evt: Any) -> None:
        segments.append((transcriber, evt))

    transcriber.transcribed.connect(on_transcribed)
    return on_transcribed.__code__.co_firstlineno


def seed_cycle(report: handletrace.Report) -> RefPath:
    cycles = [g.cycle for g in report.groups if g.cycle is not None]
    assert len(cycles) == 1
    return cycles[0]


def test_seed_cycle_path_text_is_exact(installed: None, no_gc: None) -> None:
    """The seed's transcriber closure is drawn exactly as the seed draws it."""
    make_seed_leak([])
    assert seed_cycle(handletrace.build_report()).text == SEED_CYCLE


def test_cycle_names_the_callback_and_its_definition_line(installed: None, no_gc: None) -> None:
    """The callback step carries its file:line and the captured variable."""
    line = make_seed_leak([])
    callback = seed_cycle(handletrace.build_report()).steps[3]
    assert callback == PathStep(
        label="function on_transcribed",
        type="function",
        note="closure cell 'transcriber'",
        filename=__file__,
        lineno=line,
    )


def test_cycle_renders_as_graphviz_dot(installed: None, no_gc: None) -> None:
    """to_dot() draws the cycle: one node per step, the closing edge in red."""
    line = make_seed_leak([])
    dot = to_dot(seed_cycle(handletrace.build_report()))
    name = os.path.basename(__file__)
    assert dot == (
        'digraph "handletrace" {\n'
        "  rankdir=LR;\n"
        '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];\n'
        '  edge [fontname="Helvetica", fontsize=10];\n'
        '  n0 [label="ConversationTranscriber"];\n'
        '  n1 [label="EventSignal (transcribed)"];\n'
        '  n2 [label="list"];\n'
        f'  n3 [label="function on_transcribed\\n{name}:{line}"];\n'
        "  n0 -> n1;\n"
        "  n1 -> n2;\n"
        "  n2 -> n3;\n"
        "  n3 -> n0 [label=\"closure cell 'transcriber'\", color=red, fontcolor=red];\n"
        "}\n"
    )


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_cycle_renders_as_svg_with_graphviz(installed: None, no_gc: None) -> None:
    """to_svg() runs Graphviz on the DOT text."""
    make_seed_leak([])
    svg = to_svg(seed_cycle(handletrace.build_report()))
    assert svg.lstrip().startswith("<?xml")
    assert "<svg" in svg
    assert "EventSignal (transcribed)" in svg


def test_svg_without_graphviz_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Graphviz, to_svg() raises and points at to_dot()."""
    monkeypatch.setattr("handletrace._report.graphviz.shutil.which", lambda name: None)
    path = RefPath("cycle", (PathStep("A", "A"),))
    with pytest.raises(RuntimeError, match=r"Graphviz 'dot' was not found on PATH.*to_dot\(\)"):
        to_svg(path)


def test_reachable_transcriber_path_starts_at_the_module_global(installed: None) -> None:
    """A transcriber kept in a module-level list is shown held by that global."""
    HELD.append(sdk_objects.transcriber())
    try:
        paths = [g.root_path for g in handletrace.build_report().groups]
        assert [p.text for p in paths if p is not None] == [
            f"module global {__name__}.HELD: list -> ConversationTranscriber"
        ]
    finally:
        HELD.clear()


def test_transcriber_held_by_a_local_variable_has_a_root_path(installed: None) -> None:
    """The path of a running function's variable is as precise as the Python version allows:
    named on 3.13+ (PEP 667), the frame on 3.9/3.10, "outside the Python heap" on 3.11/3.12."""
    transcriber = sdk_objects.transcriber()
    (path,) = [g.root_path for g in handletrace.build_report().groups]
    assert path is not None
    function = sys._getframe().f_code.co_name
    if sys.version_info >= (3, 13):
        assert path.root.startswith(f"local variable 'transcriber' in {function} ({__file__}:")
    elif sys.version_info >= (3, 11):
        assert path.root == EXTERNAL_ROOT
    else:
        assert path.root.startswith(f"a local variable of {function} ({__file__}:")
    assert path.steps[-1].label == "ConversationTranscriber"
    del transcriber


def test_path_through_a_user_object_names_its_attribute() -> None:
    """Attribute edges of the program's own objects are named in the path."""

    class Service:
        pass

    service = Service()
    service.sessions = {"main": [service]}  # type: ignore[attr-defined]
    path = find_cycle(service)
    assert path is not None
    assert path.text == ("Service (attribute 'sessions') -> dict (key 'main') -> list -> Service")
    del service.sessions  # type: ignore[attr-defined]


def test_dict_keys_that_may_be_secrets_are_not_shown() -> None:
    """A dict keyed by a subscription key shows the key's type, never its value."""

    class Cache:
        pass

    cache = Cache()
    cache.by_key = {sdk_objects.FAKE_KEY: cache}  # type: ignore[attr-defined]
    path = find_cycle(cache)
    assert path is not None
    assert path.text == "Cache (attribute 'by_key') -> dict (key <str>) -> Cache"
    assert sdk_objects.FAKE_KEY not in path.text
    del cache.by_key  # type: ignore[attr-defined]


def test_find_cycle_of_a_live_leaky_transcriber_draws_the_seed_cycle() -> None:
    """find_cycle() works on a live object too (before it leaks)."""
    transcriber = sdk_objects.transcriber()

    def on_transcribed(evt: Any) -> None:
        print(transcriber, evt)

    transcriber.transcribed.connect(on_transcribed)
    path = find_cycle(transcriber)
    assert path is not None and path.text == SEED_CYCLE
    transcriber.transcribed.disconnect_all()


def test_find_cycle_is_none_for_a_clean_transcriber() -> None:
    """No cycle is reported where there is none (classes and modules are not followed)."""
    transcriber = sdk_objects.transcriber()
    transcriber.transcribed.connect(lambda evt: None)
    assert find_cycle(transcriber) is None


def test_object_held_by_a_cycle_shows_the_cycle_and_the_path_to_it(
    installed: None, no_gc: None
) -> None:
    """A handle's owner that is garbage but not on a cycle: the cycle holding it, then the path."""

    class Holder:
        pass

    holder = Holder()
    holder.me = holder  # type: ignore[attr-defined]
    holder.config = sdk_objects.speech_config()  # type: ignore[attr-defined]
    del holder
    cycles = {g.cycle.text for g in handletrace.build_report().groups if g.cycle is not None}
    assert cycles == {
        "Holder (attribute 'me') -> Holder; Holder (attribute 'config') -> SpeechConfig"
    }


def test_heap_scan_changes_no_reference_count() -> None:
    """Diagnosing keeps nothing alive: a live object's reference count is unchanged after it."""
    transcriber = sdk_objects.transcriber()
    handletrace.install()
    tracked = sdk_objects.transcriber()
    before = (sys.getrefcount(transcriber), sys.getrefcount(tracked))
    diagnosis = handletrace.diagnose()
    assert len(diagnosis.handles) == 2
    assert (sys.getrefcount(transcriber), sys.getrefcount(tracked)) == before


def test_heap_scan_frees_nothing_and_keeps_no_garbage_alive(installed: None, no_gc: None) -> None:
    """Cyclic garbage survives the diagnosis, and a collection after it still frees it."""
    make_seed_leak([])
    record = handletrace.snapshot().records[0]
    owner = weakref.ref(record.owner_ref())
    del record
    garbage_before = list(gc.garbage)
    diagnosis = handletrace.diagnose()
    assert diagnosis.counts() == {"cyclic-garbage": 2}
    assert owner() is not None
    assert handletrace.stats().live == 2
    assert gc.garbage == garbage_before
    gc.collect()
    assert owner() is None
    assert handletrace.stats().released_by_cause["gc"] == 2


def test_diagnosis_finds_exactly_what_gc_collect_then_frees(installed: None, no_gc: None) -> None:
    """The handles classified cyclic garbage are exactly those a collection releases."""
    for _ in range(3):
        make_seed_leak([])
    HELD.append(sdk_objects.transcriber())
    try:
        diagnosis = handletrace.diagnose()
        garbage = {seq for seq, h in diagnosis.handles.items() if h.state == "cyclic-garbage"}
        gc.collect()
        still_live = {r.seq for r in handletrace.snapshot().records}
        assert len(garbage) == 6
        assert still_live == set(diagnosis.handles) - garbage
    finally:
        HELD.clear()


def garbage_count() -> int:
    with HeapGraph.scan() as graph:
        return graph.garbage_count


def test_diagnosis_leaves_no_cyclic_garbage_of_its_own(installed: None, no_gc: None) -> None:
    """A diagnosis (with cycles, paths and native counts) creates no reference cycle."""
    make_seed_leak([])
    HELD.append(sdk_objects.transcriber())
    # Records are built (their weak references made) first: a weak reference to an object
    # that already has one is that same object, reachable from then on, not new garbage.
    handletrace.snapshot()
    try:
        before = garbage_count()
        handletrace.diagnose(stale_after=0)
        assert garbage_count() == before
    finally:
        HELD.clear()


@pytest.mark.parametrize("enabled", [True, False])
def test_heap_scan_restores_automatic_gc_as_it_found_it(enabled: bool) -> None:
    """The collector is paused during the scan only, and left as it was."""
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with HeapGraph.scan() as graph:
            assert graph.size > 0
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
