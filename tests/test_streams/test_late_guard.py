"""The per-user search windows' late-record guard (pure logic: no broker).

The guard judges a record by its partition's progress before it, which the
:class:`SourceClock` keeps in the partition's state: a new clock over the same state (a
restart, or another instance taking the partition over) judges exactly the same.
"""

from __future__ import annotations

from contextvars import copy_context
from typing import Any

from quixstreams.context import set_message_context
from quixstreams.models import MessageContext

from movieflix_lab.streams.search_volume import PartitionLateGuard
from movieflix_lab.streams.watermarks import SourceClock
from tests.test_streams.test_panes import DictStore

WINDOW, GRACE = 1_800_000, 300_000


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> bool:
        self.calls.append(args)
        return False


STORES: dict[int, DictStore] = {}


def _feed(guard: PartitionLateGuard, partition: int, timestamp: int, offset: int) -> bool:
    def run() -> bool:
        set_message_context(MessageContext("search-events", partition, offset, 10))
        STORES.setdefault(partition, DictStore())
        guard.clock.transactions = STORES.__getitem__
        guard.clock({"query": "q"}, "u1", timestamp, None)
        return guard({"query": "q"}, "u1", timestamp, None)

    return copy_context().run(run)


def test_records_of_closed_windows_are_counted_late_and_dropped() -> None:
    late = Recorder()
    clock = SourceClock(tick_ms=WINDOW, offset_ms=GRACE)
    guard = PartitionLateGuard(WINDOW, GRACE, late, "per-user", clock)  # type: ignore[arg-type]
    assert _feed(guard, 0, 10 * WINDOW + 1_000, 1)  # partition 0 is at 5:00:01
    # Window [4:30, 5:00) ended 1 s ago: still within the grace period.
    assert _feed(guard, 0, 10 * WINDOW - 1_000, 2)
    # Partition 0 moves past 5:05 + a bit: window [4:30, 5:00) is closed now.
    assert _feed(guard, 0, 10 * WINDOW + GRACE + 5_000, 3)
    assert not _feed(guard, 0, 10 * WINDOW - 1_000, 4)
    # Between one and two grace periods late (the gap in Quix's own check): still late.
    assert not _feed(guard, 0, 9 * WINDOW + 10, 5)
    # Another partition has its own clock: the same old time is fine there.
    assert _feed(guard, 1, 10 * WINDOW - 1_000, 6)
    # Restarted: a new clock and guard over the same partition state judge the same.
    restarted = SourceClock(tick_ms=WINDOW, offset_ms=GRACE)
    again = PartitionLateGuard(WINDOW, GRACE, late, "per-user", restarted)  # type: ignore[arg-type]
    assert not _feed(again, 0, 10 * WINDOW - 2_000, 7)
    assert [(c[4], c[5], c[8], c[9]) for c in late.calls] == [
        (9 * WINDOW, 10 * WINDOW, 0, 4),
        (9 * WINDOW, 10 * WINDOW, 0, 5),
        (9 * WINDOW, 10 * WINDOW, 0, 7),
    ]
    assert all(c[3] > 0 and c[6] == "per-user" for c in late.calls)  # late_by_ms, store
