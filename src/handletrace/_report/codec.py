"""A JSON codec for frozen dataclasses, driven by their fields: each field's name, JSON key,
type check and default are written once, where the field is declared.

A dataclass (or a ``NamedTuple``) is a JSON object with one key per field, in field order.
The field's type annotation says how its value is checked and converted:

- ``str``, ``int``, ``bool``: as they are (``true`` is not an ``int``); ``float``: a finite
  JSON number (an integer is read as a float; ``NaN``, ``Infinity`` and an integer too
  large for a float are refused); ``Any``: anything, unchecked;
- ``Optional[X]``: ``null`` or X;
- ``Tuple[X, ...]``: a list; ``Mapping[str, X]``: an object; another dataclass or a
  ``NamedTuple``: an object.

A field's metadata (``dataclasses.field(metadata=meta(...))``) adjusts that one field:

``key``
    its JSON name (default: the field's name);
``at``
    the nested object it is written in, e.g. ``"summary"`` (the object sits where its first
    field would; its other fields join it);
``omit``
    left out while it equals its default (optional parts of a schema);
``pairs``
    a tuple of ``(name, value)`` pairs, written as one object;
``required``
    must be present in the JSON although the field has a default;
``missing``
    its value when the JSON has no such key, for a field without a default;
``check``
    ``(predicate, what it says)``: a value the type allows but the schema does not
    (``(lambda v: v > 0, "should be positive")``);
``digits``
    a float rounded to this many digits when written;
``what``
    what the field holds, in words, for error messages (default: its key).

Reading: a key absent from the JSON takes the field's default (or ``missing``); a field
with neither is required. Keys the codec does not know are ignored (a reader must ignore
fields it does not know). Values a type derives from its fields (``RefPath.text``) are
written through ``Codec(derived=...)`` and ignored when read.

A malformed value raises :class:`CodecError`, which says where (``where``:
``groups[2].traceback[0].lineno``) and what is wrong (``problem``: ``should be int, got
str``); the report and the timeline turn it into their own error and wording.

This module knows nothing of reports or timelines (their models import it, never the
reverse). Each type's reader and writer is worked out once per :class:`Codec` and kept:
generated as Python source (as ``dataclasses`` generates ``__init__``), because a report
of 10,000 handles is written at every exit and a loop over fields costs two to three times
as much.
A generated reader accepts data that is right; anything else it hands to the checked
reader, which reads it again one field at a time and says what is wrong and where.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import math
import typing
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

from .._core.compat import DATACLASS_SLOTS

__all__ = ["WALL_CLOCK", "Codec", "CodecError", "JSONValueError", "loads", "meta"]

_META_KEY = "handletrace.codec"
_ABSENT: Any = object()  # a key not in the JSON (``None`` is JSON's ``null``)
_EXACT = (str, int, bool)  # checked with ``type(v) is t``: exact, and ``True`` is not an int

Decode = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True, **DATACLASS_SLOTS)
class _Options:
    key: Optional[str] = None
    at: Optional[str] = None
    omit: bool = False
    pairs: bool = False
    required: bool = False
    missing: Any = _ABSENT
    check: Optional[Tuple[Callable[[Any], bool], str]] = None
    digits: Optional[int] = None
    what: str = ""


_PLAIN = _Options()


def meta(
    *,
    key: Optional[str] = None,
    at: Optional[str] = None,
    omit: bool = False,
    pairs: bool = False,
    required: bool = False,
    missing: Any = _ABSENT,
    check: Optional[Tuple[Callable[[Any], bool], str]] = None,
    digits: Optional[int] = None,
    what: str = "",
) -> Dict[str, Any]:
    """Field metadata for the codec: ``dataclasses.field(metadata=meta(at="summary"))``."""
    return {_META_KEY: _Options(key, at, omit, pairs, required, missing, check, digits, what)}


class CodecError(ValueError):
    """A JSON value that does not fit the type it is read as.

    ``path``: keys and indexes from the top (``["groups", "[2]", "traceback", "[0]"]``);
    ``missing``: the key absent from the object at ``path``, if that is what is wrong;
    ``field``/``field_value``: the innermost record field the bad value is in (its ``what``)
    and that field's JSON value.
    """

    def __init__(self, problem: str, missing: Optional[str] = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.missing = missing
        self.path: List[str] = []
        self.field = ""
        self.field_value: Any = None

    @property
    def where(self) -> str:
        """The path as text: ``groups[2].traceback[0].lineno`` (``the top level``)."""
        text = ""
        for part in self.path:
            text += part if part.startswith("[") or not text else "." + part
        return text or "the top level"

    def __str__(self) -> str:
        if self.missing is not None:
            return f"{self.where}: {self.missing!r} is missing"
        return f"{self.where} {self.problem}"


#: A ``check`` for a wall-clock time (``time.time()``): seconds from 1970 to the year 3000.
#: Renderers turn it into a date; ``-1e18`` or ``1e300`` is no time a report was made.
WALL_CLOCK: Tuple[Callable[[Any], bool], str] = (
    lambda v: 0.0 <= v <= 32503680000.0,
    "should be a time between 1970 and 3000 (seconds since 1970)",
)

#: The longest integer a handletrace file holds (a 64-bit address has 20 digits).
MAX_INT_DIGITS = 40


class JSONValueError(ValueError):
    """Valid JSON syntax holding a value no handletrace file holds (``NaN``, ``Infinity``, an
    integer of thousands of digits); the message says which."""


def _parse_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise JSONValueError(
            f"an integer of {digits} digits (a handletrace file holds none over "
            f"{MAX_INT_DIGITS})"
        )
    return int(text)


def _parse_constant(name: str) -> float:
    raise JSONValueError(f"{name} is not a JSON number")


def loads(text: str) -> Any:
    """``json.loads`` for files from elsewhere: refuses ``NaN``/``Infinity`` and integers of
    more than ``MAX_INT_DIGITS`` digits (``JSONValueError``: converting one of thousands of
    digits costs seconds, and CPython refuses over 4,300). ``json.JSONDecodeError`` and
    ``RecursionError`` (nested too deeply) as ``json.loads``."""
    return json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "None"
    if _is_record(hint) or _origin(hint) in (dict, collections.abc.Mapping):
        return "dict"
    if _origin(hint) is tuple:
        return "list"
    if _origin(hint) is Union:
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def _wrong(expected: str, value: Any) -> CodecError:
    return CodecError(f"should be {expected}, got {type(value).__name__}")


def _origin(hint: Any) -> Any:
    return typing.get_origin(hint)


def _is_named_tuple(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")


def _is_record(hint: Any) -> bool:
    return _is_named_tuple(hint) or (isinstance(hint, type) and dataclasses.is_dataclass(hint))


@dataclasses.dataclass(frozen=True, **DATACLASS_SLOTS)
class _Field:
    name: str
    hint: Any
    default: Optional[Callable[[], Any]]  # makes the default; ``None``: no default
    options: _Options


def _record_fields(cls: type) -> List[_Field]:
    hints = typing.get_type_hints(cls)
    if _is_named_tuple(cls):
        defaults = getattr(cls, "_field_defaults", {})
        return [
            _Field(
                name,
                hints.get(name, Any),
                _constant(defaults[name]) if name in defaults else None,
                _PLAIN,
            )
            for name in cls._fields  # type: ignore[attr-defined]
        ]
    fields = []
    for f in dataclasses.fields(cls):
        default: Optional[Callable[[], Any]] = None
        if f.default is not dataclasses.MISSING:
            default = _constant(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory
        fields.append(_Field(f.name, hints[f.name], default, f.metadata.get(_META_KEY, _PLAIN)))
    return fields


class Codec:
    """Writes dataclasses as JSON-ready dicts and reads them back, checking every value.

    ``derived``: per type, values written beside its fields, computed from the object:
    ``{RefPath: {"text": lambda path: path.text}}``; a key ``"summary.groups"`` goes in the
    nested object ``summary``. They come after the fields and are not read back.
    """

    def __init__(
        self, derived: Optional[Mapping[type, Mapping[str, Callable[[Any], Any]]]] = None
    ) -> None:
        self._derived = dict(derived or {})
        self._encoders: Dict[Any, Callable[[Any], Any]] = {}
        self._decoders: Dict[Any, Decode] = {}

    def encode(self, obj: Any) -> Dict[str, Any]:
        """``obj`` (a dataclass) as a dict of JSON values."""
        return self._writer(type(obj))(obj)  # type: ignore[no-any-return]

    def decode(self, cls: type, data: Any) -> Any:
        """A ``cls`` read from ``data``; raises :class:`CodecError` saying what and where."""
        return self._reader(cls)(data)

    def _writer(self, cls: type) -> Callable[[Any], Any]:
        encoder = self._encoders.get(cls)
        if encoder is None:
            encoder = self._encoders[cls] = self._record_encoder(cls)
        return encoder

    def _reader(self, cls: type) -> Decode:
        decoder = self._decoders.get(cls)
        if decoder is None:
            decoder = self._decoders[cls] = self._record_decoder(cls)
        return decoder

    # -- writing --------------------------------------------------------------------------
    #
    # A writer is one dict display, ``{"seq": obj.seq, ...}``: three times faster than a loop
    # over the fields. The source names only field names (identifiers) and keys (written
    # with repr()); the objects it calls are passed in by name (``_Source.name``).

    def _record_encoder(self, cls: type) -> Callable[[Any], Dict[str, Any]]:
        source = _Source()
        display, optional = self._display(cls, "obj", source)
        if optional:
            body = [f"    out = {display}", *optional, "    return out"]
        else:
            body = [f"    return {display}"]
        return source.compile("def encode(obj):\n" + "\n".join(body), "encode")

    def _display(self, cls: type, x: str, source: _Source) -> Tuple[str, List[str]]:
        """Source of a dict display of the record ``x`` with the keys always written
        (nested objects where their first field is), and of the statements adding the keys
        left out while they have their default (to a dict named ``out``)."""
        named_tuple = _is_named_tuple(cls)
        entries: List[Tuple[Optional[str], str]] = []  # (nested object or None, "key: value")
        optional: List[str] = []
        for index, f in enumerate(_record_fields(cls)):
            options = f.options
            value = f"{x}[{index}]" if named_tuple else f"{x}.{f.name}"
            key = repr(options.key or f.name)
            if options.omit and f.default is not None:
                default = f.default()
                hint = _without_none(f.hint) if default is None else f.hint
                test = "is not None" if default is None else f"!= {source.name(default)}"
                optional.append(f"    if {value} {test}:")
                optional.append(f"        out[{key}] = {self._expr(hint, options, value, source)}")
            elif optional:
                raise TypeError(f"{cls.__name__}.{f.name}: fields that may be left out come last")
            else:
                entries.append((options.at, f"{key}: {self._expr(f.hint, options, value, source)}"))
        for path, fn in self._derived.get(cls, {}).items():
            parent, _, name = path.rpartition(".")
            entries.append((parent or None, f"{name!r}: {source.name(fn)}({x})"))
        top: List[str] = []
        nested: Set[str] = set()
        for where, entry in entries:
            if where is None:
                top.append(entry)
            elif where not in nested:
                nested.add(where)
                inner = ", ".join(item for at, item in entries if at == where)
                top.append(f"{where!r}: {{{inner}}}")
        return "{" + ", ".join(top) + "}", optional

    def _expr(self, hint: Any, options: _Options, x: str, source: _Source) -> str:
        """Source of an expression writing the value of source expression ``x``."""
        if hint in _EXACT or hint is Any or hint is type(None):
            return x
        if hint is float:
            return x if options.digits is None else f"round({x}, {options.digits})"
        if _is_record(hint):
            return f"{source.name(self._writer(hint))}({x})"
        origin, args = _origin(hint), typing.get_args(hint)
        if origin is Union:
            inner = self._expr(_without_none(hint), options, x, source)
            return x if inner == x else f"(None if {x} is None else {inner})"
        var = source.variable()
        if origin is tuple and options.pairs:
            value = self._expr(typing.get_args(args[0])[1], _PLAIN, var, source)
            if value == var:
                return f"dict({x})"
            return f"{{k_{var}: {value} for k_{var}, {var} in {x}}}"
        if origin is tuple:
            if _is_record(args[0]):
                display, optional = self._display(args[0], var, source)
                if not optional:  # inline, as a hand-written comprehension would be
                    return f"[{display} for {var} in {x}]"
                return f"list(map({source.name(self._writer(args[0]))}, {x}))"
            item = self._expr(args[0], _PLAIN, var, source)
            return f"list({x})" if item == var else f"[{item} for {var} in {x}]"
        if origin in (dict, collections.abc.Mapping):
            value = self._expr(args[1], _PLAIN, var, source)
            if value == var:
                return f"dict({x})"
            return f"{{k_{var}: {value} for k_{var}, {var} in {x}.items()}}"
        raise TypeError(f"the codec cannot write {hint!r}")

    # -- reading --------------------------------------------------------------------------

    def _decoder(self, hint: Any, options: _Options = _PLAIN) -> Decode:
        """How a JSON value is read as type ``hint`` (checked; raises CodecError)."""
        if hint is Any:
            return _read_any
        if hint in _EXACT or hint is type(None):
            exact = hint

            def read_exact(v: Any) -> Any:
                if type(v) is not exact:
                    raise _wrong(exact.__name__, v)
                return v

            return read_exact
        if hint is float:
            return _read_float
        if _is_record(hint):
            return self._reader(hint)
        origin, args = _origin(hint), typing.get_args(hint)
        if origin is Union:
            inner = self._decoder(next(a for a in args if a is not type(None)))
            expected = _type_name(hint)

            def read_optional(v: Any) -> Any:
                if v is None:
                    return None
                try:
                    return inner(v)
                except CodecError as exc:
                    if not exc.path and exc.missing is None:
                        exc.problem = f"should be {expected}, got {type(v).__name__}"
                    raise

            return read_optional
        if origin is tuple:
            if options.pairs:
                pair_value = self._decoder(typing.get_args(args[0])[1])

                def read_pairs(v: Any) -> Any:
                    if type(v) is not dict:
                        raise _wrong("dict", v)
                    return tuple(_items(v, pair_value))

                return read_pairs
            return self._list_decoder(self._decoder(args[0]))
        if origin in (dict, collections.abc.Mapping):
            value_dec = self._decoder(args[1])

            def read_mapping(v: Any) -> Any:
                if type(v) is not dict:
                    raise _wrong("dict", v)
                return dict(_items(v, value_dec))

            return read_mapping
        raise TypeError(f"the codec cannot read {hint!r}")

    @staticmethod
    def _list_decoder(item: Decode) -> Decode:
        def read_list(v: Any) -> Any:
            if type(v) is not list:
                raise _wrong("list", v)
            out = []
            index = 0
            try:
                for index, x in enumerate(v):  # noqa: B007 (read in the handler)
                    out.append(item(x))
            except CodecError as exc:
                exc.path.insert(0, f"[{index}]")
                raise
            return tuple(out)

        return read_list

    def _record_decoder(self, cls: type) -> Decode:
        fields = _record_fields(cls)
        parents: List[str] = []
        plan: List[_Step] = []
        for f in fields:
            options = f.options
            at = options.at
            if at is not None and at not in parents:
                parents.append(at)
            source = 0 if at is None else parents.index(at) + 1
            exact = f.hint if f.hint in _EXACT else None
            reader = None if exact is not None else self._decoder(f.hint, options)
            if options.missing is not _ABSENT:
                absent: Optional[Callable[[], Any]] = _constant(options.missing)
            else:
                absent = None if options.required else f.default
            plan.append(
                (
                    options.key or f.name,
                    source,
                    exact,
                    reader,
                    absent,
                    options.check,
                    options.what,
                )
            )
        checked = self._checked_decoder(cls, plan, parents)
        return self._fast_decoder(cls, fields, plan, parents, checked)

    def _fast_decoder(
        self,
        cls: type,
        fields: List[_Field],
        plan: List[_Step],
        parents: List[str],
        checked: Decode,
    ) -> Decode:
        """A reader generated as source (see "writing") for data that is right, which hands
        anything else to ``checked``: the same reading, one field at a time, that says what
        is wrong and where. Reading a report of 10,000 handles takes 15 ms instead of 23."""
        source = _Source()
        lines = [
            "def read(data):",
            "    if type(data) is not dict:",
            "        return checked(data)",
        ]
        for index, parent in enumerate(parents, 1):
            lines.append(f"    s{index} = data.get({parent!r})")
            lines.append(f"    if type(s{index}) is not dict:")
            lines.append("        return checked(data)")
        values = []
        for index, (f, (key, where, exact, reader, absent, check, _)) in enumerate(
            zip(fields, plan)
        ):
            v = f"v{index}"
            values.append(v)
            container = "data" if where == 0 else f"s{where}"
            lines.append(f"    {v} = {container}.get({key!r}, ABSENT)")
            test = _fast_check(f.hint, v, source)
            if exact is None and not test:  # read by a function, which raises CodecError
                test = [
                    "try:",
                    f"    {v} = {source.name(reader)}({v})",
                    "except CodecError:",
                    "    return checked(data)",
                ]
            if check is not None:
                test += [f"if not {source.name(check[0])}({v}):", "    return checked(data)"]
            if absent is None:
                if exact is None:
                    lines += [f"    if {v} is ABSENT:", "        return checked(data)"]
                lines += [f"    {line}" for line in test]
            else:
                lines += [f"    if {v} is ABSENT:", f"        {v} = {source.name(absent)}()"]
                if test:
                    lines.append("    else:")
                    lines += [f"        {line}" for line in test]
        lines.append(f"    return {source.name(cls)}({', '.join(values)})")
        source.namespace.update(checked=checked, ABSENT=_ABSENT, CodecError=CodecError)
        return source.compile("\n".join(lines), "read")  # type: ignore[no-any-return]

    def _checked_decoder(self, cls: type, plan: List[_Step], parents: List[str]) -> Decode:
        def decode(data: Any) -> Any:
            if type(data) is not dict:
                raise _wrong("dict", data)
            sources = [data]
            for parent in parents:  # the nested objects first: a missing one is named
                inner = data.get(parent, _ABSENT)
                if inner is _ABSENT:
                    raise CodecError("is missing", missing=parent)
                if type(inner) is not dict:
                    error = _wrong("dict", inner)
                    error.path.append(parent)
                    raise error
                sources.append(inner)
            values = []
            missing: Optional[Tuple[str, int]] = None
            key, source, what = "", 0, ""
            value: Any = None
            try:
                for key, source, exact, read, absent, check, what in plan:  # noqa: B007
                    value = sources[source].get(key, _ABSENT)
                    if value is _ABSENT:
                        if absent is None:
                            missing = (key, source)
                            break
                        values.append(absent())
                        continue
                    if exact is not None:
                        if type(value) is not exact:
                            raise _wrong(exact.__name__, value)
                        converted = value
                    else:
                        converted = read(value)  # type: ignore[misc]
                    if check is not None and not check[0](converted):
                        raise CodecError(f"{value!r} {check[1]}")
                    values.append(converted)
            except CodecError as exc:
                if not exc.field:
                    exc.field, exc.field_value = what or key, value
                exc.path.insert(0, key)
                if source:
                    exc.path.insert(0, parents[source - 1])
                raise
            if missing is not None:
                error = CodecError("is missing", missing=missing[0])
                if missing[1]:
                    error.path.append(parents[missing[1] - 1])
                raise error
            return cls(*values)

        return decode


#: One field's reading: key, source (0: the object, i: its i-th nested object), exact type
#: (or None), reader (or None), absent (makes the value of an absent key; None: required),
#: check, what.
_Step = Tuple[
    str,
    int,
    Optional[type],
    Optional[Decode],
    Optional[Callable[[], Any]],
    Optional[Tuple[Callable[[Any], bool], str]],
    str,
]


def _fast_check(hint: Any, v: str, source: _Source) -> List[str]:
    """Source lines accepting the value in ``v`` if it is of ``hint`` and a plain type
    (converting an int to a float), else handing the data to ``checked``; [] for others."""
    optional = _origin(hint) is Union and type(None) in typing.get_args(hint)
    inner = _without_none(hint)
    if inner not in _EXACT and inner is not float:
        return []
    name = inner.__name__
    none = f"{v} is not None and " if optional else ""
    if inner is float:
        # ``v - v`` is 0.0 for a finite float, NaN (true) for NaN and the infinities.
        lines = [f"if {none}(type({v}) is not float or {v} - {v}):"]
        lines += [f"    if type({v}) is int and -FLOAT_INT <= {v} <= FLOAT_INT:"]
        lines += [f"        {v} = float({v})", "    else:", "        return checked(data)"]
        source.namespace["FLOAT_INT"] = _FLOAT_INT
    else:
        lines = [f"if {none}type({v}) is not {name}:", "    return checked(data)"]
    return lines


#: Integers up to this size convert to a float without overflow (the fast reader's bound;
#: the checked reader tries the conversion).
_FLOAT_INT = 1 << 1023


def _read_any(v: Any) -> Any:
    return v


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _read_float(v: Any) -> float:
    if type(v) is float:
        if not math.isfinite(v):
            raise CodecError(f"should be a finite number, got {v!r}")
        return v  # type: ignore[no-any-return]
    if type(v) is int:
        try:
            return float(v)
        except OverflowError:
            raise CodecError("is too large a number") from None
    raise _wrong("float", v)


def _items(data: Dict[str, Any], read: Decode) -> List[Tuple[str, Any]]:
    """``data``'s items with each value read by ``read`` (the key named on an error)."""
    out = []
    key = ""
    try:
        for key, value in data.items():  # noqa: B007 (read in the handler)
            out.append((key, read(value)))
    except CodecError as exc:
        exc.path.insert(0, f"[{key!r}]")
        raise
    return out


def _without_none(hint: Any) -> Any:
    """``X`` for ``Optional[X]``; ``hint`` itself otherwise."""
    if _origin(hint) is Union:
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


class _Source:
    """Generated source in the making: the objects it names, and fresh variable names."""

    def __init__(self) -> None:
        self.namespace: Dict[str, Any] = {}
        self._variables = 0

    def name(self, obj: Any) -> str:
        """A name the source can use for ``obj``."""
        name = f"_{len(self.namespace)}"
        self.namespace[name] = obj
        return name

    def variable(self) -> str:
        self._variables += 1
        return f"v{self._variables}"

    def compile(self, text: str, function: str) -> Any:
        # The text is made by the codec from field names and repr() of keys: no input.
        exec(text, self.namespace)  # noqa: S102
        return self.namespace[function]
