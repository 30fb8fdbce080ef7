"""Cheap creation-stack capture: raw (code object, line) pairs, formatted only on demand.

Like tracemalloc, a captured stack holds no frame and no local variable: only the code
object (for its file and function name) and the line number. Argument values never enter a
stack, so subscription keys passed to the SDK cannot leak into a report through one.
"""

from __future__ import annotations

import linecache
import os
import sys
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import AbstractSet, Callable, Iterator, Mapping, Optional, Sequence

from .compat import DATACLASS_SLOTS
from .redaction import redact_source

__all__ = [
    "Frame",
    "INTERNED",
    "PACKAGE_DIR",
    "Traceback",
    "USER_CODE",
    "capture",
    "capture_stack",
    "ignored_prefixes",
    "is_machinery",
    "line_of",
    "machinery_files",
    "make_traceback",
    "set_ignored_prefixes",
]


@dataclass(frozen=True, **DATACLASS_SLOTS)
class Frame:
    """One frame of a creation stack."""

    filename: str
    lineno: int
    name: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}"

    def source_line(self) -> str:
        """The stripped source line, with likely secrets masked (empty if unavailable)."""
        return redact_source(linecache.getline(self.filename, self.lineno).strip())

    def format(self) -> str:
        """This frame in the two-line style of a Python traceback."""
        head = f'  File "{self.filename}", line {self.lineno}, in {self.name}'
        line = self.source_line()
        return f"{head}\n    {line}" if line else head


class Traceback(Sequence[Frame]):
    """An immutable creation stack, oldest frame first (most recent call last).

    Frames are built from the raw code objects and instruction offsets only when first
    accessed: even the line number is worked out then, not when the stack is captured.
    """

    __slots__ = ("_codes", "_lastis", "_frames", "total_depth")

    def __init__(
        self,
        codes: tuple[CodeType, ...] = (),
        lastis: tuple[int, ...] = (),
        total_depth: Optional[int] = None,
    ):
        # Most recent first, as captured: code objects and their frames' f_lasti.
        self._codes = codes
        self._lastis = lastis
        self._frames: Optional[tuple[Frame, ...]] = None
        if total_depth is None:
            total_depth = len(codes)
        #: Frames in the whole stack, or ``None`` if it went deeper than the frames kept.
        self.total_depth: Optional[int] = None if total_depth < 0 else total_depth

    @property
    def frames(self) -> tuple[Frame, ...]:
        if self._frames is None:
            self._frames = tuple(
                Frame(code.co_filename, line_of(code, lasti), code.co_name)
                for code, lasti in zip(reversed(self._codes), reversed(self._lastis))
            )
        return self._frames

    @property
    def origin(self) -> Optional[Frame]:
        """The most recent frame outside the SDK: the line that created the handle."""
        frames = self.frames
        return frames[-1] if frames else None

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index):  # type: ignore[no-untyped-def,override]
        return self.frames[index]

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Traceback) and self.frames == other.frames

    def __hash__(self) -> int:
        return hash(self.frames)

    def __repr__(self) -> str:
        return f"<Traceback {len(self)} frames, origin {self.origin}>"

    def format(self, limit: Optional[int] = None) -> list[str]:
        """Lines like a Python traceback, most recent call last; ``limit`` keeps the newest."""
        frames = self.frames if limit is None else self.frames[-limit:]
        return [frame.format() for frame in frames]


EMPTY_TRACEBACK = Traceback()

# -- which frames are not the user's -------------------------------------------------------
#
# A captured stack starts at the user's code: the frames above it that are not the user's are
# trimmed. Those are the SDK's and wrapt's (by directory: ``set_ignored_prefixes``) and
# handletrace's own machinery, by what it is, not where it lies: the modules of the package
# except those in USER_CODE, which ship in the package but use the SDK as any program does.
# (Trimming handletrace's whole directory trimmed the example service of an installed
# ``handletrace demo``, and its stacks began in bin/handletrace instead.)

#: The package directory (``.../handletrace/``).
PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")
_PACKAGE = __name__.split(".", 1)[0]

#: Modules (a module or a whole subpackage) shipped in the package that are user code, not
#: handletrace's machinery: the example service of ``handletrace demo`` (installed as
#: ``handletrace/_example_service.py``, from ``examples/transcription_service.py``) and the
#: local speech service for tests.
USER_CODE = (f"{_PACKAGE}._example_service", f"{_PACKAGE}.testing")

_ignored_prefixes: tuple[str, ...] = ()
_machinery_files: Optional[frozenset[str]] = None


def set_ignored_prefixes(prefixes: Sequence[str]) -> None:
    """Set the directories whose frames are trimmed from the top of every captured stack
    (the SDK's, wrapt's; handletrace's own modules are always trimmed: ``machinery_files``)."""
    global _ignored_prefixes
    _ignored_prefixes = tuple(dict.fromkeys(os.path.join(p, "") for p in prefixes))


def ignored_prefixes() -> tuple[str, ...]:
    return _ignored_prefixes


def machinery_files() -> frozenset[str]:
    """The source files of handletrace's machinery: every module of the package except
    ``USER_CODE``, as code objects name them (``co_filename``).

    Listed on first use (``install()``; importing handletrace reads no directory): the
    package directory's ``.py`` files, and the files of the package's loaded modules (a
    module may come from elsewhere than the directory, e.g. a zip)."""
    global _machinery_files
    if _machinery_files is None:
        _machinery_files = frozenset(_list_machinery_files())
    return _machinery_files


def is_machinery(filename: str) -> bool:
    """Whether ``filename`` is one of handletrace's own modules (not ``USER_CODE``)."""
    return filename in machinery_files()


def _list_machinery_files() -> Iterator[str]:
    user_files = tuple(_module_path(name) for name in USER_CODE)
    for directory, subdirectories, names in os.walk(PACKAGE_DIR):
        subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
        for name in names:
            path = os.path.join(directory, name)
            if name.endswith(".py") and not _is_user_code(path, user_files):
                yield path
    for name, module in list(sys.modules.items()):
        if name.split(".", 1)[0] == _PACKAGE and not _is_user_module(name):
            source = getattr(module, "__file__", None)
            if isinstance(source, str) and source.endswith(".py"):
                yield source


def _is_user_module(name: str) -> bool:
    return any(name == user or name.startswith(user + ".") for user in USER_CODE)


def _module_path(name: str) -> str:
    """The path of module ``name`` under the package directory, without ``.py``."""
    return os.path.join(PACKAGE_DIR, *name.split(".")[1:])


def _is_user_code(path: str, user_files: tuple[str, ...]) -> bool:
    base = path[: -len(".py")]
    return any(base == user or path.startswith(os.path.join(user, "")) for user in user_files)


def capture(depth: int, start: Optional[FrameType] = None) -> Traceback:
    """Capture up to ``depth`` frames, skipping frames that are not the user's at the top
    of the stack (see ``capture_stack``)."""
    frame = start if start is not None else sys._getframe(1)
    return capture_stack(
        frame, depth, _ignored_prefixes, machinery_files(), _interned, make_traceback
    )


def capture_stack(
    frame: Optional[FrameType],
    depth: int,
    ignored_dirs: tuple[str, ...],
    ignored_files: AbstractSet[str],
    interned: Mapping[tuple[int, ...], Traceback],
    make: Callable[[tuple[int, ...], tuple[CodeType, ...], tuple[int, ...], int], Traceback],
) -> Traceback:
    """The stack from ``frame`` back: its first frames whose file is in ``ignored_files`` or
    under one of ``ignored_dirs`` skipped, then up to ``depth`` frames; interned in
    ``interned`` (a miss is made by ``make``: ``make_traceback``). What the ``_Handle``
    hooks do per handle (the C hooks, in ``_speedups.c``, do the same).

    This runs for every tracked handle, so it keeps only the code object and the offset of
    the current instruction (``f_lasti``) per frame; the line number costs a line-table walk
    and is worked out by ``line_of()`` when the stack is first shown. Equal stacks share one
    ``Traceback`` (interned, like tracemalloc's): leaked handles come from a few lines, and
    a stack costs a few hundred bytes.
    """
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename not in ignored_files and not filename.startswith(ignored_dirs):
            break
        frame = frame.f_back
    codes: list[CodeType] = []
    lastis: list[int] = []
    taken = 0
    while frame is not None and taken < depth:
        codes.append(frame.f_code)
        lastis.append(frame.f_lasti)
        taken += 1
        frame = frame.f_back
    # The frames beyond ``depth`` are not walked (that walk cost more than the capture in a
    # deep service): the total depth is known only when the stack ended (-1: it went on).
    total = taken if frame is None else -1
    # Keyed by the code objects' ids (hashing a code object is slow); an interned Traceback
    # holds its code objects, so an id in the table cannot be reused by another code object.
    key = (total, *lastis, *map(id, codes))
    traceback = interned.get(key)
    if traceback is None:
        traceback = make(key, tuple(codes), tuple(lastis), total)
    return traceback


def make_traceback(
    key: tuple[int, ...], codes: tuple[CodeType, ...], lastis: tuple[int, ...], total: int
) -> Traceback:
    """Intern a new stack under ``key`` (what ``capture()`` and the C hooks call on a miss)."""
    if len(_interned) >= _INTERNED_MAX:
        _interned.clear()  # in place: the C hooks hold this very dict
    traceback = _interned[key] = Traceback(codes, lastis, total)
    return traceback


_INTERNED_MAX = 10_000
#: Interned stacks by (total depth, *offsets, *ids of code objects); see ``capture()``.
INTERNED: dict[tuple[int, ...], Traceback] = {}
_interned = INTERNED


_line_cache: dict[tuple[CodeType, int], int] = {}


def line_of(code: CodeType, lasti: int) -> int:
    """The source line of the instruction at byte offset ``lasti`` (what ``f_lineno`` gives)."""
    key = (code, lasti)
    line = _line_cache.get(key)
    if line is None:
        line = _line_cache[key] = _compute_line(code, lasti)
        if len(_line_cache) > 50_000:
            _line_cache.clear()
    return line


def _compute_line(code: CodeType, lasti: int) -> int:
    if lasti < 0:
        return code.co_firstlineno
    co_lines = getattr(code, "co_lines", None)
    if co_lines is not None:  # Python 3.10+
        for start, end, line in co_lines():
            if start <= lasti < end:
                return code.co_firstlineno if line is None else line
        return code.co_firstlineno
    import dis  # Python 3.9: the line-number table through dis

    line = code.co_firstlineno
    for offset, lineno in dis.findlinestarts(code):
        if offset > lasti:
            break
        line = lineno
    return line
