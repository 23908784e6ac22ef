"""Pane windows closed by the watermark, against a batch computation (no broker).

Records come from several source partitions, interleaved at random (as a re-keyed partition
receives them), stamped as :class:`~movieflix_lab.streams.watermarks.SourceClock` stamps
them. The reference is a batch computation over each partition's own sequence: a record is
late for a window that ended at or before its partition's progress before it minus the
grace; every window the slowest partition's progress has passed must be emitted, once, with
the on-time records in it. The same input in another interleaving gives the same windows.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from movieflix_lab.streams.panes import INDEX, KEYS, PaneWindows, Shape
from movieflix_lab.streams.watermarks import (
    EMPTY,
    NEVER,
    PARTITION_PREFIX,
    WM_HEADER,
    encode_stamp,
    marker,
)

MINUTE = 60_000
PARTITIONS = 4


class DictStore:
    """Quix's partition transaction over one dict: ``as_state(prefix)`` as Quix's."""

    def __init__(self) -> None:
        self.data: dict[tuple[Any, str], bytes] = {}

    def as_state(self, prefix: Any, timestamp: int | None = None) -> DictState:
        return DictState(self, prefix)


class DictState:
    """Quix's ``State`` API (values serialised, as Quix's store does)."""

    def __init__(self, store: DictStore, prefix: Any) -> None:
        self._transaction, self.prefix, self._timestamp = store, prefix, None

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._transaction.data.get((self.prefix, key))
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: Any = None) -> None:
        self._transaction.data[(self.prefix, key)] = json.dumps(value).encode()

    def get_bytes(self, key: str, default: bytes | None = None) -> bytes | None:
        return self._transaction.data.get((self.prefix, key), default)

    def set_bytes(self, key: str, value: bytes, ttl: Any = None) -> None:
        self._transaction.data[(self.prefix, key)] = value

    def delete(self, key: str) -> None:
        self._transaction.data.pop((self.prefix, key), None)


Record = tuple[int, str, int, float, str]  # partition, key, timestamp, amount, item


def _partitions(rng: random.Random, records: int, disorder_ms: int) -> list[list[Record]]:
    """Each source partition's records in its own order: mostly in time, some late."""
    out: list[list[Record]] = []
    for partition in range(PARTITIONS):
        clock, mine = rng.randint(0, 20) * 60_000, []
        for _ in range(records // PARTITIONS):
            clock += rng.randint(0, 4) * 10_000  # coarse: many records on window edges
            timestamp = max(0, clock - rng.randint(0, disorder_ms // 10_000) * 10_000)
            item = rng.choice(["dune", "", "s", "up", f"rare {rng.randint(0, 10**6)}"])
            mine.append((partition, rng.choice("abc"), timestamp, float(rng.randint(1, 7200)),
                         item))  # fmt: skip
        out.append(mine)
    return out


def _interleave(rng: random.Random, partitions: list[list[Record]], chunk: int) -> list[Any]:
    """One re-keyed partition's input: every partition's records in its order, read in
    chunks of up to ``chunk`` records at random, each stamped with its progress before."""
    cursors, progress = [0] * len(partitions), [NEVER] * len(partitions)
    out = []
    while any(c < len(p) for c, p in zip(cursors, partitions, strict=True)):
        partition = rng.choice([i for i, p in enumerate(partitions) if cursors[i] < len(p)])
        for _ in range(rng.randint(1, chunk)):
            if cursors[partition] == len(partitions[partition]):
                break
            record = partitions[partition][cursors[partition]]
            cursors[partition] += 1
            stamp = encode_stamp(progress[partition], partition, len(partitions))
            progress[partition] = max(progress[partition], record[2])
            out.append((record, [(WM_HEADER, stamp)]))
    return out


def _marker(partition: int, progress: int) -> dict[str, Any]:
    return marker(partition, progress, PARTITIONS)


def _run(windows: PaneWindows, stream: list[Any], store: DictStore) -> list[dict[str, Any]]:
    out = []
    for (_, key, timestamp, amount, item), headers in stream:
        value = {"x": amount, "q": item}
        out += windows(value, key, timestamp, headers, store.as_state(key))  # type: ignore[arg-type]
    return out


def _reference(partitions: list[list[Record]], shapes: tuple[Shape, ...], grace_ms: int,
               tally: bool = False) -> tuple[dict[Any, Any], list[Any], int]:  # fmt: skip
    """Per (key, shape, start): [count, sum, items] of the on-time records; the late
    (key, timestamp, start, shape) pairs; the end up to which windows must be closed."""
    windows: dict[Any, Any] = {}
    late = []
    for mine in partitions:
        progress = NEVER
        for _, key, timestamp, amount, item in mine:
            for shape in shapes:
                for start in shape.starts(timestamp):
                    if start + shape.duration_ms <= progress - grace_ms:
                        late.append((key, timestamp, start, shape.name))
                        continue
                    window = windows.setdefault((key, shape.name, start), [0, 0.0, Counter()])
                    window[0] += 1
                    window[1] += amount
                    window[2][item] += 1
            progress = max(progress, timestamp)
    until = min(max(r[2] for r in mine) for mine in partitions) - grace_ms
    return windows, late, until


@pytest.mark.parametrize(
    ("sizes", "grace_min", "disorder_min", "chunk", "seed"),
    [
        (((30, 30), (30, 5)), 5, 12, 400, 1),  # the genre app's shapes, a catch-up's chunks
        (((30, 30), (30, 5)), 0, 3, 1, 2),  # no grace at all, record by record
        (((30, 30), (30, 20)), 7, 40, 50, 3),  # a hop that does not divide the size
        (((60, 60), (15, 15), (45, 10)), 2, 25, 900, 4),  # three shapes, 5-min panes
    ],
)
def test_windows_equal_the_batch_whatever_the_interleaving(
    sizes: tuple[tuple[int, int], ...], grace_min: int, disorder_min: int, chunk: int, seed: int
) -> None:
    shapes = tuple(Shape(f"w{i}", d * MINUTE, s * MINUTE) for i, (d, s) in enumerate(sizes))
    rng = random.Random(seed)
    partitions = _partitions(rng, 3_000, disorder_min * MINUTE)
    want, want_late, until = _reference(partitions, shapes, grace_min * MINUTE)
    results = []
    for order in range(2):  # two interleavings of the same input
        late: list[tuple[Any, ...]] = []
        windows = PaneWindows(shapes, field="x", grace_ms=grace_min * MINUTE,
                              on_late=lambda *args, late=late: late.append(args))  # fmt: skip
        store = DictStore()
        got = _run(windows, _interleave(random.Random(seed * 10 + order), partitions, chunk),
                   store)  # fmt: skip
        emitted = [(r["key"], r["window"], r["start"]) for r in got]
        assert len(emitted) == len(set(emitted)), "a window emitted twice"
        for result in got:
            count, total, _ = want[(result["key"], result["window"], result["start"])]
            assert (result["count"], result["sum"]) == (count, total), result
        pane = windows.pane_ms
        must = {k for k in want if k[2] + dict((s.name, s.duration_ms) for s in shapes)[k[1]]
                <= until - until % pane}  # fmt: skip
        assert must <= set(emitted) and len(must) > 30
        assert sorted((a[1], a[2], a[4], a[6]) for a in late) == sorted(want_late)
        assert want_late and all(a[3] > 0 for a in late)  # late_by_ms
        results.append(sorted((r["key"], r["window"], r["start"], r["count"]) for r in got))
    # Each partition's progress announced past the end (quiet partitions move on with the
    # wall clock): every window closes, nothing is left.
    end = max(r[2] for mine in partitions for r in mine) + 10 * max(d for d, _ in sizes) * MINUTE
    rest = []
    for partition in range(PARTITIONS):
        rest += windows(
            _marker(partition, end), "~watermark", end, None, store.as_state("~watermark")
        )  # type: ignore[arg-type]
    closed = {(r["key"], r["window"], r["start"]) for r in got + rest}
    assert closed == set(want)
    assert not any(key[1] in (INDEX,) or (key[1].startswith("panes:") and key[1] != KEYS)
                   for key in store.data), "panes left behind"  # fmt: skip
    assert results[0] == results[1]  # the same windows whatever the interleaving


def test_a_partition_never_heard_of_holds_every_window_back() -> None:
    windows = PaneWindows((Shape("t", 30 * MINUTE, 30 * MINUTE),), field="x", grace_ms=0)
    store = DictStore()
    out = []
    for partition in range(PARTITIONS - 1):
        for ts in (0, 100 * MINUTE):
            stamp = encode_stamp(0 if ts else NEVER, partition, PARTITIONS)
            out += windows({"x": 1.0}, "k", ts, [(WM_HEADER, stamp)], store.as_state("k"))  # type: ignore[arg-type]
    assert out == []
    # The last partition, announced empty: the others' progress closes the windows.
    out += windows(
        _marker(PARTITIONS - 1, EMPTY), "~watermark", 0, None, store.as_state("~watermark")
    )  # type: ignore[arg-type]
    assert [(r["start"], r["count"]) for r in out] == [(0, PARTITIONS - 1)]
    assert list(store.as_state(PARTITION_PREFIX).get(KEYS)) == ["k"]


def test_partitions_that_are_all_empty_close_nothing() -> None:
    windows = PaneWindows((Shape("t", 30 * MINUTE, 30 * MINUTE),), field="x", grace_ms=0)
    store = DictStore()
    out = []
    for partition in range(PARTITIONS):
        out += windows(_marker(partition, EMPTY), "~watermark", 0, None,
                       store.as_state("~watermark"))  # type: ignore[arg-type]  # fmt: skip
    stamp = encode_stamp(NEVER, 0, PARTITIONS)
    out += windows({"x": 1.0}, "k", 10 * MINUTE, [(WM_HEADER, stamp)], store.as_state("k"))  # type: ignore[arg-type]
    assert out == []  # the record is counted in an open window, not late


def test_a_record_late_for_every_window_opens_no_pane() -> None:
    windows = PaneWindows((Shape("t", 30 * MINUTE, 30 * MINUTE),), field="x", grace_ms=0)
    store = DictStore()
    stamp = encode_stamp(100 * MINUTE, 0, 1)
    assert windows({"x": 1.0}, "k", 10 * MINUTE, [(WM_HEADER, stamp)], store.as_state("k")) == []  # type: ignore[arg-type]
    assert not any(key[1].startswith("panes:") for key in store.data)


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
    rng = random.Random(7)
    partitions = [[(p, "all", ts, x, q) for p, _, ts, x, q in mine]
                  for mine in _partitions(rng, 3_000, 8 * MINUTE)]  # fmt: skip
    want, _, _ = _reference(partitions, shapes, 5 * MINUTE, tally=True)
    store = DictStore()
    got = _run(windows, _interleave(rng, partitions, 300), store)
    end = max(r[2] for mine in partitions for r in mine) + 100 * MINUTE
    for partition in range(PARTITIONS):
        got += windows(
            _marker(partition, end), "~watermark", end, None, store.as_state("~watermark")
        )  # type: ignore[arg-type]
    assert len(got) == len(want) > 30
    for result in got:
        _, _, items = want[("all", result["window"], result["start"])]
        assert result["tally"] == dict(items)
    # "" and "s" included: an item's key must not meet the pane's list of items.
    assert not any(key[1].startswith("panes:") for key in store.data if key[0] == "all")
