"""A diagnosis in a program that used asyncio leaves the collector working: on CPython
3.12.0-3.12.5, asking for the ``_asyncio`` module's referents corrupts its free list and the
next ``gc.collect()`` never ends (CPython gh-122695); the heap scan must not ask."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import asyncio, gc, sys
    import handletrace

    async def main():
        for _ in range(5):
            future = asyncio.get_running_loop().create_future()
            future.set_result(1)
            await future  # a FutureIter, freed into _asyncio's free list

    asyncio.run(main())
    handletrace.install()
    for _ in range(3):
        handletrace.analysis.find_cycle(sys.modules["_asyncio"])
        handletrace.diagnose()
        from handletrace._analysis.heap import HeapGraph
        HeapGraph.scan().close()
    print("collecting", flush=True)
    gc.collect()
    print("collected", flush=True)
    """
)


def test_collection_after_heap_scans_in_an_asyncio_program_ends() -> None:
    """Scans of a heap holding asyncio's free-listed objects, then gc.collect(): it returns."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"gc.collect() never returned: {exc.stdout!r}") from None
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["collecting", "collected"], result.stdout
