"""The sampler: a daemon thread recording live handles per kind and RSS into a timeline,
and the phase marks the program sets while it runs.

It reads ``Registry.stats()`` (a few dictionary copies under the registry lock) and the
resident set size from ``/proc/self/statm`` (``psutil`` where there is no ``/proc``;
nothing where neither exists). It never raises into the program: failures are counted.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

from ..._core.registry import Registry
from ..._core.state import TRACKER
from .model import DEFAULT_INTERVAL, Mark, Sample, Timeline

__all__ = ["MAX_MARKS", "MAX_SAMPLES", "Sampler", "rss_reader"]

MAX_SAMPLES = 20_000  # past this, every other sample is dropped and the interval doubles
MAX_MARKS = 1_000  # past this, marks are not recorded: memory stays bounded


def rss_reader() -> Tuple[Callable[[], Optional[int]], str, Callable[[], None]]:
    """A function returning the current RSS in bytes, its source, and a function to close it."""
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        fd = -1
    if fd >= 0:
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

        def read_statm() -> Optional[int]:
            return int(os.pread(fd, 128, 0).split()[1]) * page

        def close_statm() -> None:
            try:
                os.close(fd)
            except OSError:
                pass

        try:
            read_statm()
            return read_statm, "/proc/self/statm", close_statm
        except (OSError, ValueError, IndexError):
            close_statm()
    try:
        import psutil  # optional

        process = psutil.Process()
        process.memory_info()
        return (lambda: int(process.memory_info().rss)), "psutil", (lambda: None)
    except Exception:
        return (lambda: None), "", (lambda: None)


class Sampler:
    """Samples live handles per kind and RSS every ``interval`` seconds on a daemon thread.

    ``start()`` takes the first sample at once; ``stop()`` takes a last one, joins the thread
    and returns the :class:`Timeline`. Also a context manager (``timeline`` after exit).
    ``mark(label)`` says where a phase of the run begins: the charts draw it and the summary
    describes each phase on its own.
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        *,
        registry: Optional[Registry] = None,
        rss: bool = True,
        label: str = "",
        max_samples: int = MAX_SAMPLES,
    ) -> None:
        if not (isinstance(interval, (int, float)) and 0.001 <= interval <= 3600):
            raise ValueError(f"interval must be from 0.001 to 3600 seconds; got {interval!r}")
        if max_samples < 2:
            raise ValueError(f"max_samples must be at least 2; got {max_samples!r}")
        if registry is None:
            registry = TRACKER.registry
        self.registry = registry
        self.interval = float(interval)
        self.label = label
        self.max_samples = max_samples
        self._want_rss = rss
        self._samples: List[Sample] = []
        self._marks: List[Mark] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._t0 = 0.0
        self._started_at = 0.0
        self._errors = 0
        self._read_rss: Callable[[], Optional[int]] = lambda: None
        self._close_rss: Callable[[], None] = lambda: None
        self._rss_source = ""
        self.timeline: Optional[Timeline] = None

    def start(self) -> Sampler:
        if self._thread is not None:
            raise RuntimeError("this sampler was already started")
        if self._want_rss:
            self._read_rss, self._rss_source, self._close_rss = rss_reader()
        self._t0 = time.monotonic()
        self._started_at = time.time()
        self.sample_now()
        self._thread = threading.Thread(target=self._run, name="handletrace-timeline", daemon=True)
        self._thread.start()
        return self

    def sample_now(self) -> Optional[Sample]:
        """Take one sample now (also called by the thread); ``None`` if it failed."""
        try:
            stats = self.registry.stats()
            live = {kind: s.live for kind, s in stats.kinds.items() if s.live}
            sample = Sample(time.monotonic() - self._t0, live, self._read_rss())
        except Exception:
            self._errors += 1
            return None
        with self._lock:
            samples = self._samples
            if len(samples) >= self.max_samples:
                # Keep the run's whole span at half the resolution: memory stays bounded.
                del samples[1::2]
                self.interval *= 2
            samples.append(sample)
        return sample

    def mark(self, label: str) -> Optional[Mark]:
        """Mark that a phase of the run begins now (``"leaky service"``), with a sample.

        Recorded only while sampling (between :meth:`start` and :meth:`stop`) and up to
        ``MAX_MARKS``; returns the mark, or ``None`` when it was not recorded. Never raises.
        """
        if self._thread is None or self._stop.is_set():
            return None
        sample = self.sample_now()
        t = sample.t if sample is not None else time.monotonic() - self._t0
        mark = Mark(t, str(label))
        with self._lock:
            if len(self._marks) >= MAX_MARKS:
                return None
            self._marks.append(mark)
        return mark

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_now()
            if self._errors > 100:  # something is badly wrong: stop sampling, keep running
                break

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The sampling thread (``None`` before :meth:`start`)."""
        return self._thread

    def snapshot(self) -> Timeline:
        """The timeline so far (the sampler keeps running)."""
        with self._lock:
            samples = tuple(self._samples)
            marks = tuple(self._marks)
        return Timeline(
            samples=samples,
            marks=marks,
            interval=self.interval,
            started_at=self._started_at,
            label=self.label,
            rss_source=self._rss_source,
            errors=self._errors,
        )

    def stop(self) -> Timeline:
        """Take a last sample, stop the thread and return the timeline (idempotent)."""
        if self.timeline is not None:
            return self.timeline
        thread = self._thread
        if thread is not None:
            self._stop.set()
            thread.join()
            self.sample_now()
        self._close_rss()
        self.timeline = self.snapshot()
        return self.timeline

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
