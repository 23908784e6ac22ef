"""Tumbling and hopping windows of a re-keyed stream from shared panes, closed by a watermark.

Quix keeps each window of each key in its own state entry, so a record of a 30-minute window
hopping every 5 minutes updates six windows, and the tumbling 30-minute window a seventh:
seven state reads and writes, then a scan for expired windows in each store. On a genre
backlog the two window stores took most of the app's time (`benchmarks/stream_catchup.py`).

:class:`PaneWindows` computes the same windows from *panes* (the classic "no pane, no gain"
sliding-window technique): the stream is counted once, in slices as long as the greatest
common divisor of the windows' sizes and steps (5 minutes here), and a window's count and
sum are the sums of its panes, added up once, when it closes. Per record that is one read
and one write of the record's pane, as fixed-size bytes in Quix's state (so the store, its
changelog and recovery are Quix's).

Windows close on the re-keyed partition's event-time watermark
(:mod:`movieflix_lab.streams.watermarks`), not on the latest event time one key happened
to see:

- a record is late for each of its windows that ended at or before its own source
  partition's progress minus the grace period (counted through ``on_late``, with Quix's
  arguments; ``late_by_ms`` from that progress); it counts in the others;
- a window is emitted once, when the watermark (the minimum progress over the source
  partitions) passes its end plus the grace period — every key's at once, so the results
  are the batch computation over the records that were not late in their own partition;
- a pane is dropped when every window over it has been emitted.

Results: ``{"window": <name>, "key": key, "start": ms, "end": ms, "count": n, "sum": x}``
(and ``"tally"`` with one), key by key in the order keys first appeared, windows in order
of start, shape by shape as given.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from quixstreams import message_context
from quixstreams.context import MessageContextNotSetError
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.state import State

from movieflix_lab.streams.watermarks import NEVER, Advance, WatermarkClock

__all__ = ["PaneWindows", "Shape"]

#: Per key: the starts of the panes it holds, in order (read only when one opens or closes).
INDEX = "panes:index"
#: Partition-wide: the keys holding panes (in the order they first did), each with the end
#: of its earliest window not emitted yet. Keys are strings (JSON object keys).
KEYS = "panes:keys"
PANE = "panes:"
#: Per key and window (``panes:adjust:<shape>:<start>``): records its panes hold that are
#: late for it (late in their partition for this window, on time for another).
ADJUST = "panes:adjust:"
#: Per pane, with ``tally``: its items (``panes:<start>:items``), and each one's count
#: (``panes:<start>:item:<item>``; the two suffixes cannot meet, whatever the item).
ITEMS, ITEM = ":items", ":item:"
_PANE = struct.Struct(">qd")
_COUNT = struct.Struct(">q")
NOTHING_DUE = 2**62

#: Quix's ``on_late`` callback (``LateEvents`` has this signature).
OnLate = Callable[..., Any]


def _origin() -> tuple[str | None, int | None, int | None]:
    """The record's topic, partition and offset (None outside a running app)."""
    try:
        context = message_context()
    except MessageContextNotSetError:
        return None, None, None
    return context.topic, context.partition, context.offset


@dataclass(frozen=True)
class Shape:
    """One window shape: ``name`` (as Quix's window name), size and step in ms."""

    name: str
    duration_ms: int
    step_ms: int

    def __post_init__(self) -> None:
        if not 0 < self.step_ms <= self.duration_ms:
            raise ValueError(
                f"window {self.name!r}: the step ({self.step_ms} ms) must be above 0 and at "
                f"most the size ({self.duration_ms} ms)"
            )

    def starts(self, timestamp: int) -> Iterator[int]:
        """Starts of the windows holding ``timestamp``, oldest first, none below 0 (Quix's
        ``get_window_ranges``).

        >>> list(Shape("h", 30, 10).starts(35)), list(Shape("t", 30, 30).starts(35))
        ([10, 20, 30], [30])
        >>> list(Shape("h", 30, 10).starts(5)), list(Shape("h", 30, 20).starts(35))
        ([0], [20])
        """
        offset = timestamp % self.step_ms
        last = timestamp - offset
        first = max(last - (self.duration_ms - offset - 1) // self.step_ms * self.step_ms, 0)
        return iter(range(first, last + 1, self.step_ms))


class PaneWindows:
    """The stateful function: ``sdf.apply(windows, stateful=True, metadata=True, expand=True)``.

    ``shapes`` share the panes; ``field``'s values are summed (``sum``); with ``tally``, each
    record's ``tally(value)`` is counted too (``tally``: item → count, in the results; in
    state one 8-byte count per pane and item, and a pane's list of items, written when an
    item first appears in it); ``grace_ms`` as Quix's. The records must come through
    :func:`movieflix_lab.streams.regroup.regroup` (stamped, with watermark markers).
    """

    def __init__(
        self,
        shapes: tuple[Shape, ...],
        *,
        field: str | None = None,
        tally: Callable[[Any], str] | None = None,
        grace_ms: int,
        on_late: OnLate | None = None,
    ) -> None:
        if not shapes:
            raise ValueError("PaneWindows needs at least one window shape")
        if grace_ms < 0:
            raise ValueError(f"the grace period cannot be negative ({grace_ms} ms)")
        self.shapes = shapes
        self.field = field
        self.tally = tally
        self.grace_ms = grace_ms
        self.on_late = on_late
        self.pane_ms = math.gcd(*(n for s in shapes for n in (s.duration_ms, s.step_ms)))
        self.clock = WatermarkClock(grace_ms=grace_ms, pane_ms=self.pane_ms)
        #: Late (record, window) pairs by reason: ``late`` (own partition), ``quiet`` (a
        #: window closed on a quiet partition's wall-clock progress, across a restart).
        self.late_reasons: Counter[str] = Counter()

    def apply_to(self, sdf: StreamingDataFrame) -> StreamingDataFrame:
        """The closed windows of ``sdf``'s keys, one record each, timestamped with the
        window's start (as Quix's windows emit them)."""
        closed = sdf.apply(self, stateful=True, metadata=True, expand=True)
        return closed.set_timestamp(lambda value, key, timestamp, headers: value["start"])

    def __call__(
        self, value: Any, key: Any, timestamp: int, headers: Any, state: State
    ) -> list[dict[str, Any]]:
        shared = self.clock.shared(state)
        closed = self.clock.closed(state)
        seen = self.clock.observe(value, timestamp, headers, state)
        if not seen.marker:
            self._add(value, key, timestamp, state, shared, closed, seen.late_until, seen.reason)
        if seen.advance is None:
            return []
        return self._close_all(state, shared, seen.advance)

    def _add(self, value: Any, key: Any, timestamp: int, state: State, shared: State,
             closed: int, late_until: int, reason: str) -> None:  # fmt: skip
        """Count the record in its pane, unless it is late for every window; a record late
        for some of its windows (own partition's order) only is taken out of those."""
        counts = False
        open_but_late: list[tuple[str, int]] = []
        for shape in self.shapes:
            for start in shape.starts(timestamp):
                end = start + shape.duration_ms
                if end > late_until:
                    counts = True
                    continue
                self.late_reasons[reason] += 1
                if self.on_late is not None:
                    self.on_late(value, key, timestamp, late_until - timestamp, start, end,
                                 shape.name, *_origin())  # fmt: skip
                if end > closed:  # not emitted yet: its panes will hold this record
                    open_but_late.append((shape.name, start))
        if not counts:  # late for every window: opens no pane
            return
        amount = value[self.field] if self.field is not None else 0.0
        item = self.tally(value) if self.tally is not None else None
        for name, start in open_but_late:  # late for some windows only: taken out of them
            entry = f"{ADJUST}{name}:{start}"
            adjust = state.get(entry) or {"count": 0, "sum": 0.0, "tally": {}}
            adjust["count"] += 1
            adjust["sum"] += amount
            if item is not None:
                adjust["tally"][item] = adjust["tally"].get(item, 0) + 1
            state.set(entry, adjust)
        pane_start = timestamp - timestamp % self.pane_ms
        pane = PANE + str(pane_start)
        raw = state.get_bytes(pane)
        if raw is None:
            count, total = 0, 0.0
            index: list[int] = state.get(INDEX) or []
            state.set(INDEX, sorted([*index, pane_start]))
            due = self._first_end(pane_start)
            keys: dict[str, int] = shared.get(KEYS) or {}
            if key not in keys or due < keys[key]:
                shared.set(KEYS, {**keys, key: min(due, keys.get(key, due))})
        else:
            count, total = _PANE.unpack(raw)
        state.set_bytes(pane, _PANE.pack(count + 1, total + amount))
        if item is not None:
            self._count(state, pane, item)

    @staticmethod
    def _count(state: State, pane: str, item: str) -> None:
        """One more ``item`` in the pane's tally (its items listed once, when first seen)."""
        entry = pane + ITEM + item
        raw = state.get_bytes(entry)
        if raw is None:
            items: list[str] = state.get(pane + ITEMS) or []
            state.set(pane + ITEMS, [*items, item])
        state.set_bytes(entry, _COUNT.pack(_COUNT.unpack(raw)[0] + 1 if raw else 1))

    def _tally(self, state: State, pane: int) -> dict[str, int]:
        where = f"{PANE}{pane}"
        items: list[str] = state.get(where + ITEMS) or []
        return {
            item: _COUNT.unpack(state.get_bytes(where + ITEM + item) or b"")[0] for item in items
        }

    def _first_end(self, pane: int) -> int:
        """The end of the earliest window over ``pane``."""
        return min(next(shape.starts(pane)) + shape.duration_ms for shape in self.shapes)

    def _close_all(self, state: State, shared: State, advance: Advance) -> list[dict[str, Any]]:
        """Every key's windows ending in (before, after]: the watermark passed them. Only
        the keys with a window due are read (``KEYS``: key → its earliest window end not
        emitted yet), so an advance costs the windows it closes, not every pane held."""
        keys: dict[str, int] = shared.get(KEYS) or {}
        results: list[dict[str, Any]] = []
        transaction = state._transaction  # type: ignore[attr-defined]
        changed = False
        for key, due in list(keys.items()):
            if due > advance.after:
                continue
            changed = True
            after = self._close(transaction.as_state(prefix=key), key, advance, results)
            if after is None:
                del keys[key]
            else:
                keys[key] = after
        if changed:
            shared.set(KEYS, keys)
        return results

    def _close(self, state: State, key: Any, advance: Advance,
               results: list[dict[str, Any]]) -> int | None:  # fmt: skip
        """Emit ``key``'s windows the watermark closed; drop the panes no open window needs;
        the end of its next window due (None: it holds no pane)."""
        index: list[int] = state.get(INDEX) or []
        # Read only for the windows emitted now: a catch-up can hold many panes ahead of
        # the watermark (a partition read hours ahead of the slowest), and an advance would
        # read them all again for nothing.
        panes: dict[int, tuple[int, float]] = {}

        def pane_of(pane: int) -> tuple[int, float]:
            if pane not in panes:
                panes[pane] = _PANE.unpack(state.get_bytes(PANE + str(pane)) or b"")
            return panes[pane]

        tallies: dict[int, dict[str, int]] = {}

        def tally(pane: int) -> dict[str, int]:
            if pane not in tallies:
                tallies[pane] = self._tally(state, pane)
            return tallies[pane]

        was_closed, closed = advance.before, advance.after
        due = NOTHING_DUE
        for shape in self.shapes:
            size = shape.duration_ms
            # The windows holding a pane, oldest first (the index is sorted): a window with
            # no pane is skipped to the first window over the next pane.
            start = next(shape.starts(index[0])) if index else None
            while start is not None:
                end = start + size
                low, high = bisect_left(index, start), bisect_left(index, end)
                if low == high:
                    start = next(shape.starts(index[low])) if low < len(index) else None
                    continue
                if end > closed:  # this one and the later ones are open
                    due = min(due, end)
                    break
                inside = index[low:high]
                start += shape.step_ms
                if was_closed > NEVER and end <= was_closed:  # emitted before
                    continue
                window_start = end - size
                entry = f"{ADJUST}{shape.name}:{window_start}"
                adjust = state.get(entry)
                if adjust is not None:
                    state.delete(entry)
                result = {"window": shape.name, "key": key, "start": window_start, "end": end,
                          "count": sum(pane_of(p)[0] for p in inside),
                          "sum": sum(pane_of(p)[1] for p in inside)}  # fmt: skip
                if adjust is not None:
                    result["count"] -= adjust["count"]
                    result["sum"] -= adjust["sum"]
                if self.tally is not None:
                    merged: Counter[str] = Counter()
                    for p in inside:
                        merged.update(tally(p))
                    if adjust is not None:
                        merged.subtract(adjust["tally"])
                    result["tally"] = {item: n for item, n in merged.items() if n > 0}
                if result["count"] > 0:
                    results.append(result)
        # A pane is needed while a window over it is open; the last one starts at the pane's
        # own step boundary. That end grows with the pane, so the panes dropped are the
        # index's first ones.
        dropped = 0
        for pane in index:
            if any(pane - pane % s.step_ms + s.duration_ms > closed for s in self.shapes):
                break
            dropped += 1
        kept = index[dropped:]
        for pane in index[:dropped]:
            state.delete(PANE + str(pane))
            if self.tally is not None:
                where = f"{PANE}{pane}"
                items = tallies[pane] if pane in tallies else state.get(where + ITEMS) or []
                for item in items:
                    state.delete(where + ITEM + item)
                state.delete(where + ITEMS)
        if dropped:
            if kept:
                state.set(INDEX, kept)
            else:
                state.delete(INDEX)
        return due if kept else None
