"""What handletrace wraps in the SDK, and how it installs and removes those wrappers.

Patching is declarative (``RELEASE_FUNCTIONS`` and ``PATCHED_METHODS``), idempotent and exactly
reversible: ``uninstall()`` puts back each original only where the attribute is still ours.
Every wrapper calls the real SDK function, catches its own failures and counts them.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Tuple

import wrapt

from . import _stacks
from ._registry import CAUSE_COLUMN, SEQ_ATTR, RecordFields, make_weakref, thread_name
from ._tracker import TRACKER, Config, Tracker

__all__ = [
    "ACCESS_METHODS",
    "HandleTraceWarning",
    "PATCHED_METHODS",
    "RELEASE_FUNCTIONS",
    "SDK_MODULE",
    "install",
    "is_installed",
    "kind_of",
    "uninstall",
]

SDK_MODULE = "azure.cognitiveservices.speech"


#: The ``_sdk_lib`` release functions the SDK passes to ``_Handle`` or calls directly.
RELEASE_FUNCTIONS: Tuple[str, ...] = (
    "audio_config_release",
    "audio_data_stream_release",
    "audio_stream_format_release",
    "audio_stream_release",
    "auto_detect_source_lang_config_release",
    "connection_async_handle_release",
    "connection_handle_release",
    "dialog_service_connector_activity_received_event_release",
    "dialog_service_connector_handle_release",
    "dialog_service_connector_turn_status_received_release",
    "grammar_handle_release",
    "grammar_phrase_handle_release",
    "keyword_recognition_model_handle_release",
    "meeting_release_handle",
    "participant_release_handle",
    "pronunciation_assessment_config_release",
    "property_bag_release",
    "recognizer_async_handle_release",
    "recognizer_event_handle_release",
    "recognizer_handle_release",
    "recognizer_result_handle_release",
    "source_lang_config_release",
    "speech_config_release",
    "speech_recognition_model_handle_release",
    "speech_synthesis_request_release",
    "speech_translation_model_handle_release",
    "speechapi_async_handle_release",
    "synthesizer_async_handle_release",
    "synthesizer_event_handle_release",
    "synthesizer_handle_release",
    "synthesizer_result_handle_release",
    "voice_info_handle_release",
)

#: (module, attribute path) of the Python methods handletrace wraps.
PATCHED_METHODS: Tuple[Tuple[str, str], ...] = (
    (SDK_MODULE + ".interop", "_Handle.__init__"),
    (SDK_MODULE + ".interop", "_Handle.__del__"),
    (SDK_MODULE + ".speech", "ResultFuture.__init__"),
)

#: (module, attribute path) of SDK methods wrapped to keep access records (``_access.py``):
#: who connected which signal, and who started / stopped an operation, at which line.
#: Entries this SDK version does not define are skipped.
ACCESS_METHODS: Tuple[Tuple[str, str], ...] = (
    (SDK_MODULE + ".speech", "EventSignal.connect"),
    (SDK_MODULE + ".speech", "EventSignal.disconnect_all"),
    (SDK_MODULE + ".speech", "Recognizer.start_continuous_recognition"),
    (SDK_MODULE + ".speech", "Recognizer.stop_continuous_recognition"),
    (SDK_MODULE + ".speech", "Recognizer.start_keyword_recognition"),
    (SDK_MODULE + ".speech", "Recognizer.stop_keyword_recognition"),
    (SDK_MODULE + ".speech", "SpeechRecognizer.start_continuous_recognition_async"),
    (SDK_MODULE + ".speech", "SpeechRecognizer.stop_continuous_recognition_async"),
    (SDK_MODULE + ".speech", "SpeechRecognizer.start_keyword_recognition_async"),
    (SDK_MODULE + ".speech", "SpeechRecognizer.stop_keyword_recognition_async"),
    (SDK_MODULE + ".speech", "SourceLanguageRecognizer.start_continuous_recognition_async"),
    (SDK_MODULE + ".speech", "SourceLanguageRecognizer.stop_continuous_recognition_async"),
    (SDK_MODULE + ".speech", "KeywordRecognizer.stop_recognition_async"),
    (SDK_MODULE + ".speech", "SpeechSynthesizer.start_speaking"),
    (SDK_MODULE + ".speech", "SpeechSynthesizer.start_speaking_text"),
    (SDK_MODULE + ".speech", "SpeechSynthesizer.start_speaking_ssml"),
    (SDK_MODULE + ".speech", "SpeechSynthesizer.start_speaking_text_async"),
    (SDK_MODULE + ".speech", "SpeechSynthesizer.start_speaking_ssml_async"),
    (SDK_MODULE + ".speech", "SpeechSynthesizer.stop_speaking"),
    (SDK_MODULE + ".speech", "SpeechSynthesizer.stop_speaking_async"),
    (SDK_MODULE + ".transcription", "ConversationTranscriber.start_transcribing_async"),
    (SDK_MODULE + ".transcription", "ConversationTranscriber.stop_transcribing_async"),
    (SDK_MODULE + ".transcription", "MeetingTranscriber.start_transcribing_async"),
    (SDK_MODULE + ".transcription", "MeetingTranscriber.stop_transcribing_async"),
    (SDK_MODULE + ".translation", "TranslationRecognizer.start_continuous_recognition_async"),
    (SDK_MODULE + ".translation", "TranslationRecognizer.stop_continuous_recognition_async"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.start_keyword_recognition"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.start_keyword_recognition_async"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.stop_keyword_recognition"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.stop_keyword_recognition_async"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.stop_listening"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.stop_listening_async"),
)

_SUFFIXES = ("_release_handle", "_handle_release", "_release")


def kind_of(release_function_name: str) -> str:
    """The kind a release function names: ``recognizer_handle_release`` -> ``recognizer``."""
    for suffix in _SUFFIXES:
        if release_function_name.endswith(suffix):
            return release_function_name[: -len(suffix)].rstrip("_")
    return release_function_name


class HandleTraceWarning(UserWarning):
    """handletrace could not do what was asked; the program goes on unchanged."""


def _address(handle: Any) -> int:
    value = getattr(handle, "value", handle)
    return value if isinstance(value, int) else 0


def _frame_self(frame: FrameType) -> Any:
    code = frame.f_code
    if code.co_argcount and code.co_varnames[0] == "self":
        return frame.f_locals.get("self")
    return None


_get_ident = threading.get_ident
# Running threads by ident (read without creating a _DummyThread for native SDK threads).
_active_threads: Dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]


# Async handles belong to whatever started the operation; the release function tells the rest.
_ASYNC_KIND_BY_OWNER = {
    "SpeechSynthesizer": "synthesizer_async",
    "Connection": "connection_async",
}


def _async_kind(owner: Any) -> str:
    for cls in type(owner).__mro__:
        kind = _ASYNC_KIND_BY_OWNER.get(cls.__name__)
        if kind is not None:
            return kind
    return "recognizer_async"


@dataclass(frozen=True)
class _HookContext:
    """What the ``_Handle`` hooks read: the registry's containers and a few callables.

    The C hooks take each attribute once, when they are made; the containers are never
    replaced (the registry empties them in place)."""

    tracker: Tracker
    live: Dict[int, Tuple[Any, ...]]
    counts: Dict[str, Any]
    seq_counter: Iterator[int]
    unwrapped: Dict[int, Tuple[Any, str]]
    interned: Dict[Tuple[int, ...], Any]
    active_threads: Dict[int, threading.Thread]
    prefixes: Tuple[str, ...]
    empty_traceback: Any
    #: id(_Handle) -> seq: ``Registry.handle_index``.
    handle_index: Any
    kind_for: Callable[[Any], str]
    count_error: Callable[[str, BaseException], None]
    new_kind: Callable[[str], Any]
    make_traceback: Callable[..., Any]
    monotonic: Callable[[], float]
    #: The counters' columns of the two release causes a ``__del__`` hook counts.
    del_column: int
    gc_column: int


#: Environment variable that keeps the C hooks out even when the extension is built.
NO_EXTENSIONS_VARIABLE = "HANDLETRACE_NO_EXTENSIONS"


_warned_values: set = set()


def _speedups() -> Any:
    """The C accelerator module, or ``None`` (not built, or switched off)."""
    raw = os.environ.get(NO_EXTENSIONS_VARIABLE, "")
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return None
    if value not in ("", "0", "false", "no", "off") and raw not in _warned_values:
        _warned_values.add(raw)  # one warning per value, however often install() runs
        warnings.warn(
            f"handletrace: invalid value {raw!r} for {NO_EXTENSIONS_VARIABLE} (accepted: "
            "1, true, yes or on for the pure-Python hooks; 0, false, no or off for the C "
            "accelerator); the C accelerator is used if it is built",
            HandleTraceWarning,
            stacklevel=3,
        )
    try:
        from . import _speedups as module  # type: ignore[attr-defined]
    except ImportError:
        return None
    return module


def hooks_in_use() -> Optional[str]:
    """``"c"`` or ``"python"``: which ``_Handle`` hooks are in place (``None``: none are)."""
    patcher = TRACKER.patcher
    return None if patcher is None else patcher.hook_kind


def _python_hooks(original_init: Any, original_del: Any, ctx: _HookContext) -> Tuple[Any, Any]:
    """The pure-Python ``_Handle`` hooks: what the C hooks of ``_speedups`` do, line for line.

    Per handle they keep only what cannot be found later: the sequence number (by the
    ``_Handle``'s address), kind, the ctypes handle, the code that made it, the thread, the
    time and the stack. The ``_Handle`` and its owner are found when a record is built
    (``_owners.py``).
    """
    tracker = ctx.tracker
    registry = tracker.registry
    unwrapped_get = ctx.unwrapped.get
    active_get = ctx.active_threads.get
    seq_counter = ctx.seq_counter
    kind_for = ctx.kind_for
    count_error = ctx.count_error
    empty = ctx.empty_traceback
    monotonic = ctx.monotonic
    index = ctx.handle_index
    capture = _stacks.capture
    getframe = sys._getframe
    get_ident = threading.get_ident

    def handle_init(
        self: Any, handle: Any, test_fn: Any, release_fn: Any, *args: Any, **kwargs: Any
    ) -> None:
        # The _Handle keeps the real release function, not handletrace's wrapper of it:
        # its __del__ then releases without passing through the wrapper (the __del__
        # hook below has already removed the record).
        entry = unwrapped_get(id(release_fn))
        original_init(
            self, handle, test_fn, release_fn if entry is None else entry[0], *args, **kwargs
        )
        if not tracker.installed:
            return
        try:
            kind = entry[1] if entry is not None else kind_for(release_fn)
            config = tracker.config
            kinds = config.kinds
            if kinds is not None and kind not in kinds:
                return
            seq = next(seq_counter)
            frame = getframe(1)
            ident = get_ident()
            thread = active_get(ident)
            sample, depth = config.stack_sample, config.stack_depth
            if sample and depth and (sample == 1 or seq % sample == 0):
                traceback = capture(depth, frame)
            else:
                traceback = empty
            registry.add_handle(
                id(self),
                (
                    seq,
                    kind,
                    handle,
                    frame.f_code,
                    thread if thread is not None else ident,
                    monotonic(),
                    traceback,
                ),
            )
        except Exception as exc:
            try:
                count_error("_Handle.__init__", exc)
            except Exception:
                pass

    def handle_del(self: Any) -> None:
        try:
            address = id(self)
            if address in index:
                gc_thread = tracker.gc_thread
                cause = "gc" if gc_thread is not None and gc_thread == get_ident() else "del"
                registry.release_handle(address, cause)
        except Exception as exc:
            try:
                count_error("_Handle.__del__", exc)
            except Exception:
                pass
        original_del(self)

    return handle_init, handle_del


class _Patcher:
    """The wrappers in place, with the originals they replaced."""

    def __init__(self, tracker: Tracker, sdk_dir: str, internal_dirs: List[str]) -> None:
        self.tracker = tracker
        self.sdk_dir = sdk_dir
        self.internal_dirs = tuple(internal_dirs)
        self.methods: List[Tuple[type, str, Any, Any]] = []  # (class, name, original, wrapper)
        self.functions: List[Tuple[Any, str, Any, Any]] = []  # (lib, name, original, wrapper)
        self.kinds_by_name: Dict[str, str] = {}
        # id(release wrapper) -> (the real release function, its kind); see handle_init.
        self.unwrapped: Dict[int, Tuple[Any, str]] = {}
        self.hook_kind: Optional[str] = None

    # -- record creation (the hot path) ---------------------------------------------------
    def make_record(
        self, kind: str, address: int, owner: Any, start: FrameType, source: str, handle: Any
    ) -> RecordFields:
        """The record fields for a new handle; ``start`` is the SDK frame that made it.

        Returns the fields in ``HandleRecord`` order without ``created_at`` (which is worked
        out from ``created_monotonic``); the registry builds the record itself
        only when one is asked for (building it costs more than the rest of this function).
        """
        tracker = self.tracker
        config: Config = tracker.config
        sdk_dir = self.sdk_dir
        frame: Optional[FrameType] = start
        parent = None
        # Owner: the SDK object whose method made the handle; parent: the next SDK object out
        # (e.g. the ConversationTranscriber whose __init__ made a PropertyCollection).
        # (_frame_self inlined: this loop runs for every handle.)
        while frame is not None:
            code = frame.f_code
            if not code.co_filename.startswith(sdk_dir):
                break
            if code.co_argcount and code.co_varnames[0] == "self":
                candidate = frame.f_locals.get("self")
                if candidate is not None and candidate is not owner:
                    if owner is None:
                        owner = candidate
                    else:
                        parent = candidate
                        break
            frame = frame.f_back
        seq = tracker.registry.next_seq()
        traceback = _stacks.EMPTY_TRACEBACK
        sample = config.stack_sample
        if sample and config.stack_depth and (sample == 1 or seq % sample == 0):
            traceback = _stacks.capture(config.stack_depth, frame)
        ident = _get_ident()
        thread = _active_threads.get(ident)
        if thread is not None:
            ident = thread.ident or ident  # one int object for all records of this thread
            name = thread.name
        else:
            name = thread_name(ident)
        return (
            seq,
            kind,
            address,
            type(owner).__qualname__ if owner is not None else "",
            type(parent).__qualname__ if parent is not None else None,
            ident,
            name,
            time.monotonic(),  # created_at is worked out from it (see _registry._as_record)
            traceback,
            source,
            make_weakref(owner),
            make_weakref(parent),
            make_weakref(handle),
        )

    def kind_for(self, release_fn: Any) -> str:
        name = getattr(release_fn, "__name__", None) or "unknown"
        kind = self.kinds_by_name.get(name)
        if kind is None:
            kind = self.kinds_by_name[name] = kind_of(name)
        return kind

    def hook_context(self) -> _HookContext:
        """What the ``_Handle`` hooks share with the registry (the C hooks keep these)."""
        registry = self.tracker.registry
        return _HookContext(
            tracker=self.tracker,
            live=registry.live_table,
            counts=registry.counts_table,
            seq_counter=registry.seq_counter,
            unwrapped=self.unwrapped,
            interned=_stacks.INTERNED,
            active_threads=_active_threads,
            prefixes=_stacks.ignored_prefixes(),
            empty_traceback=_stacks.EMPTY_TRACEBACK,
            handle_index=registry.handle_index,
            kind_for=self.kind_for,
            count_error=registry.count_error,
            new_kind=registry.new_kind,
            make_traceback=_stacks.make_traceback,
            monotonic=time.monotonic,
            del_column=CAUSE_COLUMN["del"],
            gc_column=CAUSE_COLUMN["gc"],
        )

    def handle_hooks(self, original_init: Any, original_del: Any) -> Tuple[Any, Any]:
        """The ``_Handle.__init__`` and ``__del__`` replacements (C if available)."""
        speedups = _speedups()
        # First: the registry's containers are converted for the hooks' kind, then handed over.
        self.tracker.registry.use_accelerator(speedups)
        ctx = self.hook_context()
        if speedups is not None:
            init_hook, del_hook = speedups.make_hooks(original_init, original_del, ctx)
            self.hook_kind = "c"
        else:
            init_hook, del_hook = _python_hooks(original_init, original_del, ctx)
            self.hook_kind = "python"
        functools.update_wrapper(init_hook, original_init)  # sets __wrapped__
        functools.update_wrapper(del_hook, original_del)
        return init_hook, del_hook

    # -- wrappers --------------------------------------------------------------------------
    def build_wrappers(self, originals: Dict[str, Any]) -> Dict[str, Callable[..., Any]]:
        """The objects replacing the SDK methods in ``originals`` (path -> original).

        ``_Handle.__init__/__del__`` run for every native handle: they are the C hooks of
        ``handletrace._speedups`` when that extension is built (and not switched off), else
        the plain Python functions below, which do exactly the same. Neither is a
        ``wrapt.FunctionWrapper``: binding one per call costs more than all the bookkeeping
        (see benchmarks/README.md). Each calls the original first or last, whatever happens
        in handletrace's own code.
        """
        # Everything a wrapper touches is bound here as a closure variable, not a module
        # global: finalisers run during interpreter shutdown, after module globals are cleared.
        tracker = self.tracker
        registry = tracker.registry
        getframe = sys._getframe
        patcher = self
        original_future_init = originals["ResultFuture.__init__"]
        handle_init, handle_del = self.handle_hooks(
            originals["_Handle.__init__"], originals["_Handle.__del__"]
        )

        def future_init(self: Any, async_handle: Any, *args: Any, **kwargs: Any) -> None:
            original_future_init(self, async_handle, *args, **kwargs)
            if not tracker.installed:
                return
            try:
                address = _address(async_handle)
                start = getframe(1)
                creator = (
                    _frame_self(start)
                    if start.f_code.co_filename.startswith(patcher.sdk_dir)
                    else None
                )
                kind = _async_kind(creator)
                kinds = tracker.config.kinds
                if not address or (kinds is not None and kind not in kinds):
                    return
                record = patcher.make_record(kind, address, self, start, "future", None)
                setattr(self, SEQ_ATTR, record[0])  # not via __dict__: that builds a dict
                registry.add(record)
            except Exception as exc:
                registry.count_error("ResultFuture.__init__", exc)

        functools.update_wrapper(future_init, original_future_init)  # sets __wrapped__
        return {
            "_Handle.__init__": handle_init,
            "_Handle.__del__": handle_del,
            "ResultFuture.__init__": future_init,
        }

    def release_wrapper(self, kind: str) -> Callable[..., Any]:
        """Wrapper for a release function: notices direct calls on a tracked address."""
        tracker = self.tracker
        registry = tracker.registry

        def release(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            # Not only while installed: during uninstall() (installed is already False, the
            # wrappers still in place) a release seen is a release that need not be guessed
            # at later (a resolved future may be dropped before uninstall() can list it).
            if args:
                try:
                    # A release from _Handle.__del__ finds no record: the __del__ wrapper has
                    # already removed it. Anything still registered here is a direct call.
                    record = registry.find_address(_address(args[0]))
                    if record is not None and record.kind == kind:
                        registry.release(record.seq, "direct")
                        owner = (
                            record.handle_ref()
                            if record.source == "handle"
                            else (record.owner_ref())
                        )
                        if owner is not None:
                            owner.__dict__.pop(SEQ_ATTR, None)
                except Exception as exc:
                    registry.count_error(f"{kind} release", exc)
            return wrapped(*args, **kwargs)

        return release

    # -- applying and removing -------------------------------------------------------------
    def apply(self, sdk: Any) -> None:
        interop = sys.modules[SDK_MODULE + ".interop"]
        lib = interop._sdk_lib
        targets = []
        for module_name, path in PATCHED_METHODS:
            cls_name, attr = path.split(".")
            cls = getattr(sys.modules[module_name], cls_name)
            targets.append((path, cls, attr, cls.__dict__[attr]))
        wrappers = self.build_wrappers({path: original for path, _, _, original in targets})
        for path, cls, attr, original in targets:
            wrapper = wrappers[path]
            setattr(cls, attr, wrapper)
            self.methods.append((cls, attr, original, wrapper))
        for name in RELEASE_FUNCTIONS:
            try:
                original = getattr(lib, name)
            except AttributeError:
                continue  # not exported by this SDK version
            kind = kind_of(name)
            # wrapt here (not a plain function): the SDK sets ``restype`` on these objects,
            # and a FunctionWrapper forwards that to the ctypes function.
            wrapper = wrapt.FunctionWrapper(original, self.release_wrapper(kind))
            setattr(lib, name, wrapper)
            self.functions.append((lib, name, original, wrapper))
            self.unwrapped[id(wrapper)] = (original, kind)
        # Access records (not on the per-handle path, so wrapt is fine here).
        from ._access import access_wrapper

        for module_name, path in ACCESS_METHODS:
            cls_name, attr = path.split(".")
            cls = getattr(sys.modules.get(module_name), cls_name, None)
            if not isinstance(cls, type) or attr not in cls.__dict__:
                continue  # not defined by this SDK version
            original = cls.__dict__[attr]
            wrapper = wrapt.FunctionWrapper(original, access_wrapper(self, path))
            setattr(cls, attr, wrapper)
            self.methods.append((cls, attr, original, wrapper))

    def remove(self) -> None:
        for cls, attr, original, wrapper in reversed(self.methods):
            if cls.__dict__.get(attr) is wrapper:
                setattr(cls, attr, original)
        for lib, name, original, wrapper in reversed(self.functions):
            if lib.__dict__.get(name) is wrapper:
                setattr(lib, name, original)
        self.methods.clear()
        self.functions.clear()
        self.unwrapped.clear()


# -- SDK compatibility -------------------------------------------------------------------


def sdk_problem(sdk: Any) -> Optional[str]:
    """Why this SDK's internals are not what handletrace expects, or ``None`` if they are."""
    interop = sys.modules.get(SDK_MODULE + ".interop")
    speech = sys.modules.get(SDK_MODULE + ".speech")
    if interop is None or speech is None:
        return "its interop or speech module is missing"
    handle_cls = getattr(interop, "_Handle", None)
    if not isinstance(handle_cls, type):
        return "interop._Handle is missing"
    for attr in ("__init__", "__del__"):
        if attr not in handle_cls.__dict__:
            return f"interop._Handle.{attr} is missing"
    init = handle_cls.__dict__["__init__"]
    code = getattr(init, "__code__", None)
    if code is None or code.co_varnames[:4] != ("self", "handle", "test_fn", "release_fn"):
        return "interop._Handle.__init__ no longer takes (handle, test_fn, release_fn)"
    if getattr(interop, "_sdk_lib", None) is None:
        return "interop._sdk_lib is missing"
    future = getattr(speech, "ResultFuture", None)
    if not isinstance(future, type) or "__init__" not in future.__dict__:
        return "speech.ResultFuture is missing"
    return None


def sdk_version() -> str:
    try:
        from importlib.metadata import version

        return version("azure-cognitiveservices-speech")
    except Exception:
        return "unknown"


# -- install / uninstall -------------------------------------------------------------------

_hook_registered = False


def _patch_sdk(sdk: Any) -> None:
    """Post-import hook (or direct call): wrap the SDK if tracking is on and not yet wrapped."""
    tracker = TRACKER
    if not tracker.installed or tracker.patcher is not None:
        return
    problem = sdk_problem(sdk)
    if problem is not None:
        tracker.installed = False
        warnings.warn(
            f"handletrace: azure-cognitiveservices-speech {sdk_version()} is not supported "
            f"({problem}); the SDK was left untouched and no handles are tracked. "
            "Install a supported SDK release (see the handletrace README).",
            HandleTraceWarning,
            stacklevel=2,
        )
        return
    sdk_dir = os.path.dirname(os.path.abspath(sdk.__file__))
    wrapt_dir = os.path.dirname(os.path.abspath(wrapt.__file__))
    _stacks.set_ignored_prefixes([sdk_dir, wrapt_dir])
    patcher = _Patcher(tracker, sdk_dir + os.sep, [sdk_dir, wrapt_dir])
    try:
        patcher.apply(sdk)
    except Exception as exc:
        patcher.remove()
        tracker.installed = False
        warnings.warn(
            f"handletrace: could not wrap azure-cognitiveservices-speech {sdk_version()} "
            f"({type(exc).__name__}: {exc}); the SDK was left untouched.",
            HandleTraceWarning,
            stacklevel=2,
        )
        return
    tracker.patcher = patcher


def _on_gc(phase: str, info: Dict[str, int]) -> None:
    TRACKER.gc_thread = threading.get_ident() if phase == "start" else None


def install(
    *,
    stack_depth: Optional[int] = None,
    stack_sample: Optional[int] = None,
    kinds: Optional[Any] = None,
) -> bool:
    """Start tracking native handles; return ``True`` if this call started it.

    Works before or after ``azure.cognitiveservices.speech`` is imported (a post-import hook
    patches it on import). A second call while installed is a no-op; if it asks for other
    options, it warns and keeps the ones in force.
    """
    global _hook_registered
    tracker = TRACKER
    changes: Dict[str, Any] = {}
    if stack_depth is not None:
        changes["stack_depth"] = stack_depth
    if stack_sample is not None:
        changes["stack_sample"] = stack_sample
    if kinds is not None:
        changes["kinds"] = frozenset([kinds] if isinstance(kinds, str) else kinds)
    # A fresh install starts from the defaults: options of an earlier install() do not linger.
    base = tracker.config if tracker.installed else Config()
    config = base.with_changes(**changes)  # validates; raises ValueError
    if tracker.installed:
        if changes and config != tracker.config:
            warnings.warn(
                "handletrace.install() called again with different options; it is already "
                "installed and keeps its current options (call uninstall() first to change them)",
                HandleTraceWarning,
                stacklevel=2,
            )
        return False
    tracker.config = config
    tracker.installed = True
    tracker.exposed_futures, tracker.exposed_after = _prune_unobserved(tracker), None
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
    sdk = sys.modules.get(SDK_MODULE)
    if sdk is not None and SDK_MODULE + ".speech" in sys.modules:
        _patch_sdk(sdk)
    elif not _hook_registered:
        _hook_registered = True
        wrapt.register_post_import_hook(_patch_sdk, SDK_MODULE)
    return tracker.installed


def uninstall() -> bool:
    """Stop tracking and restore every original SDK attribute; ``True`` if it was installed.

    Handles created while installed keep working. Records of handles still alive stay in the
    registry until those handles are released or ``install()`` runs again.
    """
    tracker = TRACKER
    if not tracker.installed and tracker.patcher is None:
        return False
    marker = tracker.registry.last_seq()  # records made after this raced with uninstall()
    tracker.installed = False
    # Futures alive now may be resolved (their async handle released) unseen once the release
    # wrappers are gone. Listed while the wrappers are still in place: a future resolved and
    # dropped before the listing was seen by them, one resolved after it is listed.
    tracker.exposed_futures = tracker.exposed_futures.union(
        record.seq
        for record in tracker.registry.live_records(source="future")
        if record.owner_ref() is not None
    )
    if tracker.patcher is not None:
        tracker.patcher.remove()
        tracker.patcher = None
    if _on_gc in gc.callbacks:
        gc.callbacks.remove(_on_gc)
    tracker.gc_thread = None
    tracker.exposed_after = marker
    return True


def is_installed() -> bool:
    """Whether handletrace is tracking (or waiting for the SDK to be imported to track)."""
    return TRACKER.installed


def _prune_unobserved(tracker: Tracker) -> FrozenSet[int]:
    """Drop records whose handle was released while handletrace was not installed: a
    ``_Handle`` that died, or the async handle of a ``ResultFuture`` that was alive at an
    ``uninstall()`` and has since been resolved (``get()`` released it unseen) or dropped.
    (A future that died unresolved while handletrace watched is a real leak: it stays.)

    Returns the exposed futures still alive and unresolved (still exposed: one may be in the
    middle of ``get()``, its handle released but not yet marked resolved)."""
    registry = tracker.registry
    exposed, after = tracker.exposed_futures, tracker.exposed_after
    still = set()
    registry.prune_dead_handles()
    for record in registry.live_records(source="future"):
        if record.seq in exposed or (after is not None and record.seq > after):
            future = record.owner_ref()
            if future is None or getattr(future, "_ResultFuture__resolved", False):
                registry.release(record.seq, "untracked")
            else:
                still.add(record.seq)
    return frozenset(still)
