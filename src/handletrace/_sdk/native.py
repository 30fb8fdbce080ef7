"""The SDK's own native handle table, read through ctypes, beside the Python registry.

The Speech SDK library counts the handles it has handed out, per native type, and exports
the counts: ``diagnostics_get_handle_count()`` (total) and ``diagnostics_get_handle_info()``
(a JSON list of ``{"name", "count"}``, freed with ``diagnostics_free_string``). Put beside
handletrace's live records, they separate leaks the application can fix (tracked handles
whose Python owner leaks) from handles handletrace cannot see: those created before
``install()`` or by the SDK itself (the SDK makes an ``AudioOutputConfig`` for the default
argument of ``SpeechSynthesizer`` when it is imported, for one). Those the SDK makes for
itself are found (:func:`sdk_internal_handles`) and named in the row they belong to, so
only what nothing explains is shown as a problem (``NativeRow.unexplained``).

Beside the handle table, the check gives the process's native threads and open sockets
(``/proc``; ``None`` elsewhere): each live recognizer has threads of its own and a websocket,
so "2 threads and ~1.5 sockets per live recognizer" shows without another tool.

Reading the counts calls the SDK only if it is already imported; it never imports it, and
it uses its own ctypes function objects (the SDK's ``_sdk_lib`` attributes are left as they are).
"""

from __future__ import annotations

import ctypes
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from .._core.compat import DATACLASS_SLOTS
from .._core.process import ProcessCounts, read_process_counts
from .._core.state import TRACKER
from .kinds import kind_of
from .modules import SDK_MODULE, handle_type, is_sdk_object, sdk_library

__all__ = [
    "NATIVE_TYPE_KINDS",
    "NativeCheck",
    "NativeCounts",
    "NativeRow",
    "PerObject",
    "SdkHandle",
    "cross_check",
    "native_handle_total",
    "read_native_counts",
    "sdk_internal_handles",
]


#: Native handle-table type -> the handletrace kinds whose handles it counts.
NATIVE_TYPE_KINDS: Mapping[str, Tuple[str, ...]] = {
    "ISpxAudioConfig": ("audio_config",),
    "ISpxAudioDataStream": ("audio_data_stream",),
    "ISpxAudioStream": ("audio_stream",),
    "ISpxAutoDetectSourceLangConfig": ("auto_detect_source_lang_config",),
    "ISpxConnection": ("connection",),
    "ISpxGrammar": ("grammar",),
    "ISpxGrammarPhrase": ("grammar_phrase",),
    "ISpxKwsModel": ("keyword_recognition_model",),
    "ISpxNamedProperties": ("property_bag",),
    "ISpxPronunciationAssessmentConfig": ("pronunciation_assessment_config",),
    "ISpxRecognitionEventArgs": ("recognizer_event",),
    "ISpxRecognitionResult": ("recognizer_result",),
    "ISpxRecognizer": ("recognizer",),
    "ISpxSourceLanguageConfig": ("source_lang_config",),
    "ISpxSpeechConfig": ("speech_config",),
    "ISpxSynthesisEventArgs": ("synthesizer_event",),
    "ISpxSynthesisRequest": ("speech_synthesis_request",),
    "ISpxSynthesisResult": ("synthesizer_result",),
    "ISpxSynthesizer": ("synthesizer",),
    "ISpxVoiceInfo": ("voice_info",),
    "SPXWAVEFORMATEX": ("audio_stream_format",),
}
#: Every native asynchronous operation (``CSpxAsyncOp<...>``) is one of these kinds.
ASYNC_KINDS: Tuple[str, ...] = (
    "recognizer_async",
    "synthesizer_async",
    "connection_async",
    "speechapi_async",
)


def kinds_for(native_type: str) -> Tuple[str, ...]:
    """The handletrace kinds a native handle type corresponds to (empty if unknown)."""
    if native_type.startswith("CSpxAsyncOp<"):
        return ASYNC_KINDS
    return NATIVE_TYPE_KINDS.get(native_type, ())


def native_type_of(kind: str) -> str:
    """The native handle type whose table entry counts handles of ``kind`` ("" if none)."""
    for native_type, kinds in NATIVE_TYPE_KINDS.items():
        if kind in kinds:
            return native_type
    return ""


@dataclass(frozen=True, **DATACLASS_SLOTS)
class NativeCounts:
    """The SDK's handle table at one moment: total and per native type."""

    total: int
    types: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, **DATACLASS_SLOTS)
class NativeRow:
    """One native type (or, with ``native_type == ""``, tracked kinds with no native type)."""

    native_type: str
    kinds: Tuple[str, ...]
    native: int
    tracked: int
    #: What each of this type's untracked handles that the SDK made and holds itself is
    #: (``"the default audio config of SpeechSynthesizer"``): expected, not a leak.
    sdk_internal: Tuple[str, ...] = ()

    @property
    def difference(self) -> int:
        """Native handles handletrace does not track (negative: tracked but not native)."""
        return self.native - self.tracked

    @property
    def unexplained(self) -> int:
        """The difference less the handles the SDK made for itself: made before install(),
        or inside the SDK in ways handletrace does not know (negative: tracked, not native)."""
        return self.native - self.tracked - len(self.sdk_internal)


#: The kinds whose live handles the process's threads and sockets are shown per: one
#: ``recognizer`` handle per recognizer, transcriber or translation recognizer, one
#: ``synthesizer`` handle per synthesizer (each has its own threads and connection).
PER_OBJECT_KINDS: Tuple[str, ...] = ("recognizer", "synthesizer")


@dataclass(frozen=True, **DATACLASS_SLOTS)
class PerObject:
    """The process's threads and sockets divided by the live SDK objects of one kind (the
    whole process's: threads and sockets of anything else in it count too)."""

    kind: str
    live: int
    threads: Optional[float]
    sockets: Optional[float]


@dataclass(frozen=True, **DATACLASS_SLOTS)
class NativeCheck:
    """Native counts beside tracked live counts; ``relative`` if measured from a baseline.
    ``threads`` and ``sockets``: the process's native threads and open sockets when it was
    made (never relative; ``None`` where ``/proc`` is missing)."""

    native_total: int = 0
    tracked_total: int = 0
    relative: bool = False
    rows: Tuple[NativeRow, ...] = ()
    threads: Optional[int] = None
    sockets: Optional[int] = None

    def live(self, kind: str) -> int:
        """Live tracked handles of ``kind`` (0 if none)."""
        return sum(row.tracked for row in self.rows if kind in row.kinds and len(row.kinds) == 1)

    def per_object(self) -> Tuple[PerObject, ...]:
        """Threads and sockets per live recognizer and per live synthesizer (kinds with
        none live, and a check without process counts, give none)."""
        if self.threads is None and self.sockets is None:
            return ()
        found = []
        for kind in PER_OBJECT_KINDS:
            live = self.live(kind)
            if live:
                threads = None if self.threads is None else self.threads / live
                sockets = None if self.sockets is None else self.sockets / live
                found.append(PerObject(kind, live, threads, sockets))
        return tuple(found)

    @property
    def agrees(self) -> bool:
        """Whether every native handle is tracked or one the SDK made for itself."""
        return all(row.unexplained == 0 for row in self.rows)

    @property
    def differences(self) -> Tuple[NativeRow, ...]:
        """The rows whose counts the registry and the SDK's own handles do not explain."""
        return tuple(row for row in self.rows if row.unexplained)


@dataclass(frozen=True, **DATACLASS_SLOTS)
class SdkHandle:
    """A native handle the SDK made and holds itself, so no program can leak or free it."""

    native_type: str
    what: str  #: e.g. ``"the default audio config of SpeechSynthesizer"``


#: (library, (count, info, free)) made once: ctypes function objects refer to themselves,
#: so making them per call would leave cyclic garbage behind every report.
_functions: Optional[Tuple[Any, Optional[Tuple[Any, Any, Any]]]] = None


def _diagnostics_functions(lib: Any) -> Optional[Tuple[Any, Any, Any]]:
    global _functions
    cached = _functions
    if cached is not None and cached[0] is lib:
        return cached[1]
    try:
        functions: Optional[Tuple[Any, Any, Any]] = (
            ctypes.CFUNCTYPE(ctypes.c_size_t)(("diagnostics_get_handle_count", lib)),
            ctypes.CFUNCTYPE(ctypes.c_void_p)(("diagnostics_get_handle_info", lib)),
            ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p)(("diagnostics_free_string", lib)),
        )
    except (AttributeError, OSError, ValueError):
        functions = None
    _functions = (lib, functions)
    return functions


def native_handle_total() -> Optional[int]:
    """The SDK's native handle-table total, or ``None`` (SDK not imported, or no such export)."""
    lib = sdk_library()
    functions = None if lib is None else _diagnostics_functions(lib)
    return None if functions is None else int(functions[0]())


def read_native_counts() -> Optional[NativeCounts]:
    """The SDK's native handle counts, or ``None`` (SDK not imported, or no such exports)."""
    lib = sdk_library()
    if lib is None:
        return None
    functions = _diagnostics_functions(lib)
    if functions is None:
        return None
    count_fn, info_fn, free_fn = functions
    total = int(count_fn())
    pointer = info_fn()
    if not pointer:
        return NativeCounts(total, {})
    try:
        raw = ctypes.string_at(pointer)
    finally:
        free_fn(pointer)
    types: Dict[str, int] = {}
    for entry in json.loads(raw.decode("utf-8", errors="replace")):
        name, count = entry.get("name"), entry.get("count")
        if isinstance(name, str) and isinstance(count, int):
            types[name] = types.get(name, 0) + count
    return NativeCounts(total, dict(sorted(types.items())))


#: All native async operation types are shown as one row (they share their kinds).
ASYNC_ROW = "CSpxAsyncOp<*>"


def _merged(types: Mapping[str, int]) -> Dict[str, int]:
    merged: Dict[str, int] = {}
    for name, count in types.items():
        key = ASYNC_ROW if name.startswith("CSpxAsyncOp<") else name
        merged[key] = merged.get(key, 0) + count
    return merged


# -- the SDK's own handles ------------------------------------------------------------------


def _sdk_functions() -> Iterator[Tuple[str, Any]]:
    """(owner, function) for every function and method the imported SDK modules define;
    ``owner`` is ``"Class"`` for a class's ``__init__``, else ``"Class.method()"`` or
    ``"function()"``."""
    seen: Set[int] = set()
    for name, module in list(sys.modules.items()):
        if module is None or not (name == SDK_MODULE or name.startswith(SDK_MODULE + ".")):
            continue
        for value in list(vars(module).values()):
            # The SDK's modules import each other's names: each object once.
            if id(value) in seen or not callable(value):
                continue
            seen.add(id(value))
            if not (getattr(value, "__module__", None) or "").startswith(SDK_MODULE):
                continue
            if not isinstance(value, type):
                yield f"{getattr(value, '__name__', '?')}()", value
                continue
            for attr, member in list(vars(value).items()):
                function = getattr(member, "__func__", member)  # staticmethod, classmethod
                if callable(function):
                    owner = value.__name__ if attr == "__init__" else f"{value.__name__}.{attr}()"
                    yield owner, function


def _default_arguments(function: Any) -> Iterator[Tuple[str, Any]]:
    """(parameter, default value) of ``function``."""
    code = getattr(function, "__code__", None)
    defaults = getattr(function, "__defaults__", None) or ()
    if code is not None and defaults:
        names = code.co_varnames[code.co_argcount - len(defaults) : code.co_argcount]
        yield from zip(names, defaults)
    yield from (getattr(function, "__kwdefaults__", None) or {}).items()


def _live_handle_of(obj: Any, handle_cls: type) -> Any:
    """The ``_Handle`` an SDK object holds, if it still holds a native handle."""
    for value in list(getattr(obj, "__dict__", {}).values()):
        if type(value) is handle_cls:
            pointer = getattr(value, "_Handle__handle", None)
            if getattr(pointer, "value", None):
                return value
    return None


def sdk_internal_handles() -> Tuple[SdkHandle, ...]:
    """The native handles the imported SDK made and holds itself, untracked.

    Found, not assumed: default argument values of the SDK's functions that hold a live
    ``_Handle``. The SDK makes those when its modules are imported, before any patch is in
    place: ``SpeechSynthesizer(speech_config, audio_config=AudioOutputConfig(
    use_default_speaker=True))`` makes one ``ISpxAudioConfig`` per process. A handle that
    handletrace tracks anyway is left out (it is already in the tracked counts).
    """
    handle_cls = handle_type()
    if handle_cls is None:
        return ()
    registry = TRACKER.registry
    found: List[SdkHandle] = []
    seen: Set[int] = set()
    for owner, function in _sdk_functions():
        for parameter, value in _default_arguments(function):
            if id(value) in seen or not is_sdk_object(value):
                continue
            seen.add(id(value))
            handle = _live_handle_of(value, handle_cls)
            if handle is None or registry.seq_of_handle(handle) is not None:
                continue
            release = getattr(getattr(handle, "_Handle__release_fn", None), "__name__", "")
            native_type = native_type_of(kind_of(release)) if isinstance(release, str) else ""
            if native_type:
                what = f"the default {parameter.replace('_', ' ')} of {owner}"
                found.append(SdkHandle(native_type, what))
    return tuple(found)


# -- the cross-check -------------------------------------------------------------------------


def cross_check(
    tracked: Mapping[str, int],
    native: NativeCounts,
    baseline: Optional[NativeCounts] = None,
    *,
    sdk_internal: Optional[Sequence[SdkHandle]] = None,
    process: Optional[ProcessCounts] = None,
) -> NativeCheck:
    """Native counts (minus ``baseline``, if given) beside ``tracked`` live counts per kind.

    One row per native type that has handles now or had some at the baseline, and one per
    tracked kind with live handles that no native type accounts for. ``sdk_internal``: the
    handles the SDK made for itself (default: :func:`sdk_internal_handles`, or none with a
    baseline, which can only be read once the SDK is imported and so already counts them);
    a row's untracked handles are explained by them as far as they go. ``process``: the
    process's threads and sockets (default: read now).
    """
    if sdk_internal is None:
        sdk_internal = () if baseline is not None else sdk_internal_handles()
    now = _merged(native.types)
    before = _merged(baseline.types) if baseline is not None else {}
    rows = []
    covered: Set[str] = set()
    for native_type in sorted(set(now) | set(before)):
        kinds = kinds_for(native_type)
        count = now.get(native_type, 0) - before.get(native_type, 0)
        tracked_count = sum(tracked.get(kind, 0) for kind in kinds)
        covered.update(kinds)
        if count or tracked_count:
            internal = [h.what for h in sdk_internal if h.native_type == native_type]
            internal = internal[: max(0, count - tracked_count)]
            rows.append(NativeRow(native_type, kinds, count, tracked_count, tuple(internal)))
    for kind in sorted(tracked):
        if kind not in covered and tracked[kind]:
            rows.append(NativeRow("", (kind,), 0, tracked[kind]))
    native_total = native.total - (baseline.total if baseline is not None else 0)
    if process is None:
        process = read_process_counts()
    return NativeCheck(
        rows=tuple(rows),
        native_total=native_total,
        tracked_total=sum(tracked.values()),
        relative=baseline is not None,
        threads=process.threads,
        sockets=process.sockets,
    )
