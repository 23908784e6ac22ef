"""Pane windows against a window-by-window computation of Quix's per-key closing (no broker).

The reference below keeps every window of every key on its own, as Quix's windowed store
does: a record counts in each of its windows the key's event time has not closed yet, is
late for the others, and a window is emitted once, when the key's event time passes its end
plus the grace period.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from typing import Any

import pytest

from movieflix_lab.streams.panes import INDEX, META, PaneWindows, Shape

MINUTE = 60_000


class DictState:
    """Quix's ``State`` API over a dict (values serialised, as Quix's store does)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.data.get(key)
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.dumps(value).encode()

    def get_bytes(self, key: str, default: bytes | None = None) -> bytes | None:
        return self.data.get(key, default)

    def set_bytes(self, key: str, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class Reference:
    """Every window of every key kept on its own (what Quix's windowed store does)."""

    def __init__(self, shapes: tuple[Shape, ...], grace_ms: int, tally: bool = False) -> None:
        self.shapes, self.grace_ms, self.tally = shapes, grace_ms, tally
        self.latest: dict[str, int] = defaultdict(int)
        self.windows: dict[tuple[str, str, int], list[Any]] = {}
        self.late: list[tuple[str, int, int, str]] = []

    def feed(self, key: str, timestamp: int, amount: float, item: str = "") -> list[dict[str, Any]]:
        latest = self.latest[key] = max(self.latest[key], timestamp)
        closed = latest - self.grace_ms
        for shape in self.shapes:
            starts = [s for s in range(0, timestamp + 1, shape.step_ms)
                      if s <= timestamp < s + shape.duration_ms]  # fmt: skip
            for start in starts:
                if start + shape.duration_ms <= closed:
                    self.late.append((key, timestamp, start, shape.name))
                else:
                    window = self.windows.setdefault((key, shape.name, start), [0, 0.0, Counter()])
                    window[0] += 1
                    window[1] += amount
                    window[2][item] += 1
        out = []
        for shape in self.shapes:
            for wkey in sorted(k for k in self.windows if k[0] == key and k[1] == shape.name):
                if wkey[2] + shape.duration_ms <= closed:
                    count, total, items = self.windows.pop(wkey)
                    out.append({"window": shape.name, "start": wkey[2],
                                "end": wkey[2] + shape.duration_ms, "count": count,
                                "sum": total})  # fmt: skip
                    if self.tally:
                        out[-1]["tally"] = dict(items)
        return out


def _stream(rng: random.Random, records: int, disorder_ms: int) -> list[tuple[str, int, float]]:
    clock, out = 0, []
    for _ in range(records):
        clock += rng.randint(0, 4) * 10_000  # coarse: many records fall on window edges
        timestamp = max(0, clock - rng.randint(0, disorder_ms // 10_000) * 10_000)
        out.append((rng.choice("abc"), timestamp, float(rng.randint(1, 7200))))
    return out


@pytest.mark.parametrize(
    ("sizes", "grace_min", "disorder_min", "seed"),
    [
        (((30, 30), (30, 5)), 5, 12, 1),  # the genre app's shapes
        (((30, 30), (30, 5)), 0, 3, 2),  # no grace at all
        (((30, 30), (30, 20)), 7, 40, 3),  # a hop that does not divide the size: 10-min panes
        (((60, 60), (15, 15), (45, 10)), 2, 25, 4),  # three shapes, 5-min panes
    ],
)
def test_same_results_and_late_records_as_every_window_kept_on_its_own(
    sizes: tuple[tuple[int, int], ...], grace_min: int, disorder_min: int, seed: int
) -> None:
    shapes = tuple(Shape(f"w{i}", d * MINUTE, s * MINUTE) for i, (d, s) in enumerate(sizes))
    late: list[tuple[Any, ...]] = []
    windows = PaneWindows(shapes, field="x", grace_ms=grace_min * MINUTE,
                          on_late=lambda *args: late.append(args))  # fmt: skip
    reference = Reference(shapes, grace_min * MINUTE)
    states: dict[str, DictState] = defaultdict(DictState)
    events = _stream(random.Random(seed), 3_000, disorder_min * MINUTE)
    emitted = 0
    for key, timestamp, amount in events:
        got = windows({"x": amount}, key, timestamp, None, states[key])  # type: ignore[arg-type]
        want = reference.feed(key, timestamp, amount)
        assert got == want, (key, timestamp)  # whole seconds: float sums are exact
        emitted += len(got)
    assert emitted > 200 and reference.late, "the stream must close windows and be late"
    assert [(a[1], a[2], a[4], a[6]) for a in late] == reference.late
    assert all(a[3] > 0 for a in late)  # late_by_ms

    # A far-future record closes all the rest: emitted once, and no pane is left but its own.
    end = max(t for _, t, _ in events) + 10 * max(d for d, _ in sizes) * MINUTE
    for key, state in states.items():
        got = windows({"x": 0.0}, key, end, None, state)  # type: ignore[arg-type]
        assert got == reference.feed(key, end, 0.0)
        assert set(state.data) == {META, INDEX, f"panes:{end - end % windows.pane_ms}"}
        assert state.get(INDEX) == [end - end % windows.pane_ms]
    size = {shape.name: shape.duration_ms for shape in shapes}
    assert all(start + size[name] > end for _, name, start in reference.windows)


def test_a_record_late_for_every_window_opens_no_pane() -> None:
    windows = PaneWindows((Shape("t", 30 * MINUTE, 30 * MINUTE),), field="x", grace_ms=0)
    state = DictState()
    windows({"x": 1.0}, "k", 100 * MINUTE, None, state)  # type: ignore[arg-type]
    before = dict(state.data)
    assert windows({"x": 1.0}, "k", 10 * MINUTE, None, state) == []  # type: ignore[arg-type]
    assert state.data == before


def test_bad_shapes_and_grace_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="at least one window shape"):
        PaneWindows((), field="x", grace_ms=0)
    with pytest.raises(ValueError, match=r"'hop': the step .* at most the size"):
        Shape("hop", 30 * MINUTE, 45 * MINUTE)
    with pytest.raises(ValueError, match="'zero': the step"):
        Shape("zero", 30 * MINUTE, 0)
    with pytest.raises(ValueError, match="grace period cannot be negative"):
        PaneWindows((Shape("t", MINUTE, MINUTE),), grace_ms=-1)


def test_a_tally_counts_each_item_per_window_and_leaves_nothing_behind() -> None:
    shapes = (Shape("total", 30 * MINUTE, 30 * MINUTE), Shape("hop", 30 * MINUTE, 10 * MINUTE))
    windows = PaneWindows(shapes, tally=lambda value: value["q"], grace_ms=5 * MINUTE)
    reference = Reference(shapes, 5 * MINUTE, tally=True)
    rng, state = random.Random(7), DictState()
    events = _stream(rng, 3_000, 8 * MINUTE)
    emitted = 0
    for _, timestamp, _ in events:
        # "" and "s" included: an item's key must not meet the pane's list of items.
        query = rng.choice(["dune", "", "s", "up", "alien", f"rare {rng.randint(0, 10**6)}"])
        got = windows({"q": query}, "all", timestamp, None, state)  # type: ignore[arg-type]
        assert got == reference.feed("all", timestamp, 0.0, query), timestamp
        emitted += len(got)
    assert emitted > 100 and reference.late
    end = max(t for _, t, _ in events) + 100 * MINUTE
    assert windows({"q": "up"}, "all", end, None, state) == reference.feed("all", end, 0.0, "up")  # type: ignore[arg-type]
    pane = f"panes:{end - end % windows.pane_ms}"
    assert set(state.data) == {META, INDEX, pane, f"{pane}:items", f"{pane}:item:up"}
