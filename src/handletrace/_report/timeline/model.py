"""The timeline's values: samples, phase marks, the timeline itself, and its JSON form.

JSON (schema ``handletrace.timeline``, version 1), written and read by ``codec.py`` from the
fields below::

    {"schema": "handletrace.timeline", "version": 1, "label", "started_at", "interval",
     "rss_source", "errors", "marks": [{"t", "label"}], "samples": [{"t", "live", "rss"}],
     "kinds": [...]}

``marks`` was added within version 1 (a file without it loads with no marks; readers
ignore fields they do not know); ``kinds`` is derived from the samples and not read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..._core.compat import DATACLASS_SLOTS
from ...errors import TimelineError
from .. import codec

__all__ = [
    "DEFAULT_INTERVAL",
    "TIMELINE_SCHEMA",
    "TIMELINE_VERSION",
    "Mark",
    "Sample",
    "Timeline",
    "TimelineError",
]

TIMELINE_SCHEMA = "handletrace.timeline"
TIMELINE_VERSION = 1
DEFAULT_INTERVAL = 0.1  # seconds between samples


def _counts(live: Mapping[str, int]) -> bool:
    return all(n >= 0 for n in live.values())


def _size(rss: Optional[int]) -> bool:
    return rss is None or rss >= 0


#: A time in seconds since the sampler started, written to 0.1 ms.
#: Seconds since the sampler started: at most ~31 years either way (a chart's scale of 1e300
#: seconds overflowed).
MAX_SECONDS = 1e9
_TIME = codec.meta(
    digits=4,
    check=(lambda t: -MAX_SECONDS <= t <= MAX_SECONDS, "is not a time in seconds within 1e9"),
    what="time",
)


@dataclass(frozen=True, **DATACLASS_SLOTS)
class Sample:
    """Live handles per kind and the resident set size at one moment."""

    t: float = field(metadata=_TIME)  #: seconds since the sampler started
    #: live handles per kind (kinds with none may be absent)
    live: Mapping[str, int] = field(
        metadata=codec.meta(check=(_counts, "has a negative count"), what="live counts")
    )
    #: resident set size in bytes, if it could be read
    rss: Optional[int] = field(default=None, metadata=codec.meta(check=(_size, "is negative")))

    @property
    def total(self) -> int:
        return sum(self.live.values())


@dataclass(frozen=True, **DATACLASS_SLOTS)
class Mark:
    """Where a phase of the run begins (``Sampler.mark("leaky service")``)."""

    t: float = field(metadata=_TIME)  #: seconds since the sampler started
    label: str


@dataclass(frozen=True)
class Timeline:
    """Samples in time order, the phase marks, and what is needed to draw and compare them."""

    label: str = ""  #: what was sampled, e.g. the program's name
    #: wall-clock time of the first sample (``time.time()``)
    started_at: float = field(default=0.0, metadata=codec.meta(check=codec.WALL_CLOCK))
    interval: float = field(
        default=DEFAULT_INTERVAL, metadata=codec.meta(check=(lambda v: v > 0, "should be positive"))
    )
    rss_source: str = ""  #: where RSS came from: ``/proc/self/statm``, ``psutil`` or ``""``
    errors: int = 0  #: samples that failed (caught; the program was not affected)
    marks: Tuple[Mark, ...] = ()  #: phases of the run, in time order
    samples: Tuple[Sample, ...] = field(default=(), metadata=codec.meta(required=True))

    @property
    def duration(self) -> float:
        return self.samples[-1].t - self.samples[0].t if self.samples else 0.0

    @property
    def kinds(self) -> Tuple[str, ...]:
        """Kinds that were ever live, the highest peak first (then by name)."""
        peaks: Dict[str, int] = {}
        for sample in self.samples:
            for kind, count in sample.live.items():
                if count > peaks.get(kind, 0):
                    peaks[kind] = count
        return tuple(sorted(peaks, key=lambda k: (-peaks[k], k)))

    def series(self, kind: Optional[str] = None) -> List[int]:
        """Live handles of ``kind`` at each sample (all kinds together when ``None``)."""
        if kind is None:
            return [s.total for s in self.samples]
        return [s.live.get(kind, 0) for s in self.samples]

    def rss_series(self) -> List[Optional[int]]:
        return [s.rss for s in self.samples]

    @property
    def has_rss(self) -> bool:
        return any(s.rss is not None for s in self.samples)

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"schema": TIMELINE_SCHEMA, "version": TIMELINE_VERSION}
        data.update(_CODEC.encode(self))
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "timeline") -> Timeline:
        """Rebuild a timeline from its JSON form; raises :class:`TimelineError` if malformed."""
        if not isinstance(data, dict):
            raise TimelineError(f"{source}: the top level should be an object")
        if data.get("schema") != TIMELINE_SCHEMA:
            raise TimelineError(
                f"{source}: not a handletrace timeline (schema {data.get('schema')!r})"
            )
        if data.get("version") != TIMELINE_VERSION:
            raise TimelineError(
                f"{source}: timeline version {data.get('version')!r} is not supported "
                f"(this handletrace reads version {TIMELINE_VERSION})"
            )
        try:
            timeline: Timeline = _CODEC.decode(cls, data)
        except codec.CodecError as exc:
            raise TimelineError(f"{source}: {_problem(exc)}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TimelineError(f"{source}: not a valid handletrace timeline ({exc!r})") from None
        times = {"samples": [s.t for s in timeline.samples], "marks": [m.t for m in timeline.marks]}
        for key, series in times.items():
            for index in range(1, len(series)):
                if series[index] < series[index - 1]:
                    raw = data[key][index]["t"]
                    raise TimelineError(
                        f"{source}: {key[:-1]} {index} has time {raw!r} out of order"
                    )
        return timeline


_CODEC = codec.Codec(derived={Timeline: {"kinds": lambda timeline: list(timeline.kinds)}})


def _problem(error: codec.CodecError) -> str:
    """What a CodecError means for a saved timeline: a sample's or a mark's value by its
    index ("sample 3 has rss 'big'"), anything else by its path."""
    invalid = "not a valid handletrace timeline"
    path = error.path
    if len(path) >= 2 and path[0] in ("samples", "marks") and path[1].startswith("["):
        item = f"{path[0][:-1]} {path[1][1:-1]}"
        if error.missing is not None and len(path) == 2:
            return f"{invalid}: {item} has no {error.missing!r}"
        if len(path) >= 3:
            return f"{invalid}: {item} has {error.field} {error.field_value!r}"
    if error.missing is not None:
        where = f" in {error.where}" if path else ""
        return f"{invalid} (KeyError({error.missing!r})){where}"
    return f"{invalid}: {error.where} {error.problem}"
