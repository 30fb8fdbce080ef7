"""Handle records built from the registry's raw entries: the ``_Handle`` of each entry and
its owner and parent are found here, for many records at once (one heap pass per level),
when records are asked for (never on the per-handle hot path)."""

from __future__ import annotations

import time
from typing import Any, Callable, Collection, Dict, List, Optional

from .._core.registry import (
    ENTRY_CODE,
    ENTRY_SEQ,
    HANDLE_ENTRY_LEN,
    HandleRecord,
    RecordFields,
    Registry,
    address_of,
    make_weakref,
    thread_name,
)
from .owners import handles_by_seq, owners_of, scan_sees_all

__all__ = ["build_records", "find_async_record", "live_records", "prune_dead_handles"]


def live_records(
    registry: Registry,
    *,
    select: Optional[Callable[[int], bool]] = None,
    source: Optional[str] = None,
    kinds: Optional[Collection[str]] = None,
) -> List[HandleRecord]:
    """A copy of the live records in creation order; only those whose sequence number
    ``select`` accepts, of ``source`` (``"handle"`` / ``"future"``) and ``kinds``, if given
    (filtered before any record is built)."""
    table = registry.entries(select=select, source=source, kinds=kinds)
    # Records built before are reused; one get() each (a collection may release any of
    # them, and drop it from the cache, at any moment: the copy here keeps them).
    records: Dict[int, HandleRecord] = {}
    missing = []
    for seq, entry in table.items():
        record = registry.cached_record(seq)
        if record is None:
            missing.append(entry)
        else:
            records[seq] = record
    if missing:
        new = build_records(missing, registry.seq_of_handle)
        for record in new:
            records[record.seq] = record
        registry.cache_records(new)
    return [records[seq] for seq in sorted(table)]


def find_async_record(registry: Registry, address: int) -> Optional[HandleRecord]:
    """The live async-handle record at ``address`` (``ResultFuture`` records only)."""
    entry = registry.async_entry(address)
    if entry is None:
        return None
    cached = registry.cached_record(entry[ENTRY_SEQ])
    return cached or build_records([entry], registry.seq_of_handle)[0]


def prune_dead_handles(registry: Registry, found: Optional[Dict[int, Any]] = None) -> int:
    """Release (cause ``untracked``) ``_Handle`` records whose object is gone: handles
    finalised while the hooks were not in place. Returns how many (one heap pass, if there
    are any ``_Handle`` records; none while objects are frozen by ``gc.freeze()``: a frozen
    ``_Handle`` cannot be told from a dead one). ``found``, if given, receives seq -> each
    live ``_Handle`` found."""
    seqs = registry.handle_seqs()
    if not seqs or not scan_sees_all():
        return 0
    alive = handles_by_seq(seqs, registry.seq_of_handle)
    if found is not None:
        found.update(alive)
    # A release in flight is ended by whoever began it (a hook, dispose()).
    releasing = registry.releasing()
    return registry.release_dead([s for s in seqs if s not in alive and s not in releasing])


def build_records(
    entries: List[RecordFields], seq_of: Callable[[Any], Optional[int]]
) -> List[HandleRecord]:
    """Build the records of ``entries``; owners of ``_Handle`` entries are found together
    (``seq_of``: the sequence number of a ``_Handle``'s record, see ``seq_of_handle``)."""
    handles = [entry for entry in entries if len(entry) == HANDLE_ENTRY_LEN]
    objects = handles_by_seq([entry[ENTRY_SEQ] for entry in handles], seq_of) if handles else {}
    handle_objects = [objects.get(entry[ENTRY_SEQ]) for entry in handles]
    owners = owners_of(handle_objects, [entry[ENTRY_CODE] for entry in handles])
    found_objects = iter(handle_objects)
    found = iter(owners)
    offset = time.time() - time.monotonic()
    records = []
    for entry in entries:
        if len(entry) == HANDLE_ENTRY_LEN:
            seq, kind, handle, _code, thread, monotonic, traceback = entry  # HANDLE_ENTRY
            owner, owner_name, parent = next(found)
            handle_obj = next(found_objects)
            if isinstance(thread, int):
                thread_id, name = thread, thread_name(thread)
            else:
                thread_id, name = thread.ident or 0, thread.name
            records.append(
                HandleRecord(
                    seq=seq,
                    kind=kind,
                    address=address_of(handle),
                    owner=owner_name,
                    parent=type(parent).__qualname__ if parent is not None else None,
                    thread_id=thread_id,
                    thread_name=name,
                    created_at=monotonic + offset,
                    created_monotonic=monotonic,
                    traceback=traceback,
                    source="handle",
                    owner_ref=make_weakref(owner),
                    parent_ref=make_weakref(parent),
                    handle_ref=make_weakref(handle_obj),
                )
            )
        else:
            records.append(_as_record(entry))
    return records


def _as_record(entry: RecordFields) -> HandleRecord:
    # The fields carry the monotonic creation time only (one float less per live handle);
    # the wall-clock time is worked out from it (a clock step since would shift it).
    # The fields of FUTURE_ENTRY, in order:
    (seq, kind, address, owner, parent, thread_id, thread_name_, monotonic, traceback, source,
     owner_ref, parent_ref, handle_ref) = entry  # fmt: skip
    return HandleRecord(
        seq=seq,
        kind=kind,
        address=address,
        owner=owner,
        parent=parent,
        thread_id=thread_id,
        thread_name=thread_name_,
        created_at=monotonic + (time.time() - time.monotonic()),
        created_monotonic=monotonic,
        traceback=traceback,
        source=source,
        owner_ref=owner_ref,
        parent_ref=parent_ref,
        handle_ref=handle_ref,
    )
