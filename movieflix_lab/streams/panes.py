"""Tumbling and hopping windows of one stream from shared panes: one state update per record.

Quix keeps each window of each key in its own state entry, so a record of a 30-minute window
hopping every 5 minutes updates six windows, and the tumbling 30-minute window a seventh:
seven state reads and writes, then a scan for expired windows in each store. On a genre
backlog the two window stores were 60% of the app's time (`benchmarks/stream_catchup.py`).

:class:`PaneWindows` computes the same results from *panes* (the classic "no pane, no gain"
sliding-window technique): the stream is counted once, in slices as long as the greatest
common divisor of the windows' sizes and steps (5 minutes here), and a window's count and
sum are the sums of its panes, added up once, when it closes. Per record that is one read
and one write of the record's pane and of a small per-key entry (the key's event time and
when its next window is due), all as fixed-size bytes in Quix's state (so the store, its
changelog and recovery are Quix's, exactly as before).

The results are the ones of Quix's windows with per-key closing
(``.final(closing_strategy="key")``), late records included:

- the key's event time is the largest timestamp seen for it; a window closes, and is emitted
  once, when that passes its end plus the grace period;
- a record is late for each of its windows already closed (counted through ``on_late``,
  with Quix's arguments and ``late_by_ms``) and counts in the others;
- a pane is dropped when every window over it has been emitted.

Results: ``{"window": <name>, "start": ms, "end": ms, "count": n, "sum": x}`` (and
``"tally"`` with one), windows in order of start, shape by shape as given when several close
at once.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from quixstreams import message_context
from quixstreams.context import MessageContextNotSetError
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.state import State

__all__ = ["PaneWindows", "Shape"]

#: Per key: its event time and the end of its next window due (``NOTHING_DUE``: none).
META = "panes:meta"
#: Per key: the starts of the panes it holds, in order (read only when one opens or closes).
INDEX = "panes:index"
PANE = "panes:"
#: Per pane, with ``tally``: its items (``panes:<start>:items``), and each one's count
#: (``panes:<start>:item:<item>``; the two suffixes cannot meet, whatever the item).
ITEMS, ITEM = ":items", ":item:"
NOTHING_DUE = 2**62
_META = struct.Struct(">qq")
_PANE = struct.Struct(">qd")
_COUNT = struct.Struct(">q")

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
    item first appears in it); ``grace_ms`` as Quix's.
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

    def apply_to(self, sdf: StreamingDataFrame) -> StreamingDataFrame:
        """The closed windows of ``sdf``'s keys, one record each, timestamped with the
        window's start (as Quix's windows emit them)."""
        closed = sdf.apply(self, stateful=True, metadata=True, expand=True)
        return closed.set_timestamp(lambda value, key, timestamp, headers: value["start"])

    def __call__(
        self, value: Any, key: Any, timestamp: int, headers: Any, state: State
    ) -> list[dict[str, Any]]:
        meta = state.get_bytes(META)
        before, due = _META.unpack(meta) if meta is not None else (0, NOTHING_DUE)
        latest = max(timestamp, before)
        closed_end = latest - self.grace_ms  # windows ending at or before it are closed
        next_end = NOTHING_DUE  # the earliest end of this record's windows still open
        for shape in self.shapes:
            for start in shape.starts(timestamp):
                end = start + shape.duration_ms
                if end > closed_end:
                    next_end = min(next_end, end)
                elif self.on_late is not None:
                    self.on_late(value, key, timestamp, closed_end - timestamp, start, end,
                                 shape.name, *_origin())  # fmt: skip
        was_due = due
        if next_end != NOTHING_DUE:  # the record counts in at least one window
            pane_start = timestamp - timestamp % self.pane_ms
            pane = PANE + str(pane_start)
            raw = state.get_bytes(pane)
            if raw is None:
                count, total = 0, 0.0
                index: list[int] = state.get(INDEX) or []
                state.set(INDEX, sorted([*index, pane_start]))
                due = min(due, next_end)
            else:
                count, total = _PANE.unpack(raw)
            amount = value[self.field] if self.field is not None else 0.0
            state.set_bytes(pane, _PANE.pack(count + 1, total + amount))
            if self.tally is not None:
                self._count(state, pane, self.tally(value))
        results: list[dict[str, Any]] = []
        if due <= closed_end:
            results, due = self._close(state, before, latest)
        if meta is None or latest != before or due != was_due:
            state.set_bytes(META, _META.pack(latest, due))
        return results

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

    def _close(self, state: State, before: int, latest: int) -> tuple[list[dict[str, Any]], int]:
        """Emit the windows the key's event time moving from ``before`` to ``latest`` closed;
        drop the panes no open window needs; return the results and the next window due."""
        index: list[int] = state.get(INDEX) or []
        panes = {p: _PANE.unpack(state.get_bytes(PANE + str(p)) or b"") for p in index}
        tallies = {p: self._tally(state, p) for p in index} if self.tally is not None else {}
        was_closed, closed = before - self.grace_ms, latest - self.grace_ms
        results = []
        due = NOTHING_DUE
        for shape in self.shapes:
            size = shape.duration_ms
            for start in sorted({s for p in index for s in shape.starts(p)}):
                if start + size > closed:  # this one and the later ones are open
                    due = min(due, start + size)
                    break
                if start + size <= was_closed:  # emitted before
                    continue
                inside = [p for p in index if start <= p < start + size]
                result = {"window": shape.name, "start": start, "end": start + size,
                          "count": sum(panes[p][0] for p in inside),
                          "sum": sum(panes[p][1] for p in inside)}  # fmt: skip
                if self.tally is not None:
                    merged: Counter[str] = Counter()
                    for p in inside:
                        merged.update(tallies[p])
                    result["tally"] = dict(merged)
                results.append(result)
        # A pane is needed while a window over it is open; the last one starts at the pane's
        # own step boundary.
        kept = []
        for pane in index:
            if any(pane - pane % s.step_ms + s.duration_ms > closed for s in self.shapes):
                kept.append(pane)
            else:
                state.delete(PANE + str(pane))
                if self.tally is not None:
                    where = f"{PANE}{pane}"
                    for item in tallies[pane]:
                        state.delete(where + ITEM + item)
                    state.delete(where + ITEMS)
        if kept != index:
            state.set(INDEX, kept)
        return results, due
