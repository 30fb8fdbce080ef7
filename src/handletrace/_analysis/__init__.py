"""Analysis: the heap graph, reference paths and cycles, known SDK leak patterns and
``diagnose()``. Reads the heap without changing it; imports ``_core`` and ``_sdk``."""
