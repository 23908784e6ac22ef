"""Consumer status as Burrow evaluates it: OK, WARN, STOP, STALL, REWIND; ERR for a group.

Pure functions, no Kafka: they follow LinkedIn Burrow's caching evaluator rule for rule
(``core/internal/evaluator/caching.go``, ``calculatePartitionStatus`` and the checks it calls)
and the way its in-memory storage keeps a partition's window
(``core/internal/storage/inmemory.go``, ``addConsumerOffset``): the window is the group's
latest offset commits on the partition (``intervals`` of them, 10 by default), each with the
offset, the commit's own timestamp and the lag at the time it was seen (the log-end offset
then minus the offset; unknown for a commit made before the watch began), plus the log-end
offsets sampled over the same period. For a partition whose current lag is above
``allowed_lag`` (0), in this order:

1. STOP — the newest commit is older than the span of the window (now minus the last commit's
   time exceeds the last commit's time minus the first's: the consumer stopped committing),
   unless a sampled log-end offset was at or below the last committed offset (it was caught up
   a moment ago).
2. REWIND — an offset is lower than the one before it, and no later offset got back to it.
3. If some commit in the window had no more lag than ``allowed_lag``: OK. Otherwise
   STALL when every offset in the window is the same (it commits, but does not move), and
   WARN when the lag never decreased from one commit to the next (it moves, but falls behind).
4. Otherwise OK; a partition with no commits in the window is OK (nothing to judge).

A group's status is OK when every partition is, else the worst partition status, where STOP,
STALL and REWIND all count as ERR (Burrow's group statuses are OK, WARN and ERR):
:func:`group_status`. :func:`worst` gives the partition status behind it.

>>> window = [Commit(100, 0, lag=5), Commit(100, 5_000, lag=9), Commit(100, 10_000, lag=14)]
>>> partition_status(window, broker_offsets=[114], current_lag=14, now_ms=12_000)
<Status.STALL: 'STALL'>
>>> partition_status(window, broker_offsets=[114], current_lag=14, now_ms=30_000)
<Status.STOP: 'STOP'>
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Commit",
    "Status",
    "group_status",
    "partition_status",
    "record_commit",
    "worst",
]

#: Burrow's storage ``intervals`` default: the commits (and log-end offsets) a window holds.
INTERVALS = 10


class Status(StrEnum):
    """Burrow's status constants, in its order of severity (``core/protocol/evaluator.go``)."""

    OK = "OK"
    WARN = "WARN"
    ERR = "ERR"  # a group's status only
    STOP = "STOP"
    STALL = "STALL"
    REWIND = "REWIND"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {status: rank for rank, status in enumerate(Status)}


@dataclass(frozen=True)
class Commit:
    """One offset commit in a partition's window (Burrow's ``ConsumerOffset``)."""

    offset: int
    timestamp_ms: int
    #: The log-end offset when the commit was seen minus the offset; None when unknown.
    lag: int | None = None


def record_commit(
    window: Sequence[Commit],
    offset: int,
    timestamp_ms: int,
    broker_offset: int | None,
    *,
    intervals: int = INTERVALS,
    min_distance_ms: int = 0,
) -> list[Commit]:
    """``window`` with a newer commit added as Burrow's storage adds it.

    The lag is the latest known log-end offset minus the offset (0 when the log end known is
    behind it: the broker offsets are sampled, the commits are not); a commit within
    ``min_distance_ms`` of the previous one replaces it, keeping the earlier timestamp; only
    the latest ``intervals`` commits stay.

    >>> w = record_commit([], 10, 1_000, broker_offset=15)
    >>> record_commit(w, 12, 2_000, broker_offset=11)
    [Commit(offset=10, timestamp_ms=1000, lag=5), Commit(offset=12, timestamp_ms=2000, lag=0)]
    """
    lag = None if broker_offset is None else max(0, broker_offset - offset)
    kept = list(window)
    if kept and timestamp_ms - kept[-1].timestamp_ms < min_distance_ms:
        timestamp_ms = kept.pop().timestamp_ms
    kept.append(Commit(offset, timestamp_ms, lag))
    return kept[-intervals:]


# --- the rules (caching.go) ------------------------------------------------------------


def _lag_always_not_zero(window: Sequence[Commit], allowed_lag: int) -> bool:
    """Rule 1: false when the lag was within ``allowed_lag`` at some commit."""
    return not any(c.lag is not None and c.lag <= allowed_lag for c in window)


def _rewind_index(window: Sequence[Commit]) -> int:
    """Rule 2: the index of the first commit below the one before it; -1 if none."""
    for i in range(1, len(window)):
        if window[i].offset < window[i - 1].offset:
            return i
    return -1


def _rewind_recovered(window: Sequence[Commit], index: int) -> bool:
    """Rule 2, part 2: a commit from ``index`` on got back to the offset before the rewind."""
    before = window[index - 1].offset
    return any(c.offset >= before for c in window[index:])


def _stopped(window: Sequence[Commit], now_ms: int) -> bool:
    """Rule 3: the time since the last commit exceeds the window's span of commits."""
    first, last = window[0].timestamp_ms, window[-1].timestamp_ms
    return now_ms - last > last - first


def _stalled(window: Sequence[Commit]) -> bool:
    """Rule 4: every commit in the window has the same offset."""
    return all(window[i].offset == window[i - 1].offset for i in range(1, len(window)))


def _lag_not_decreasing(window: Sequence[Commit]) -> bool:
    """Rule 5: the lag never went down from one known lag to the next."""
    last: int | None = None
    for commit in window:
        if commit.lag is not None:
            if last is not None and commit.lag < last:
                return False
            last = commit.lag
    return True


def _recent_lag_zero(window: Sequence[Commit], broker_offsets: Sequence[int]) -> bool:
    """A sampled log-end offset at or below the last committed offset: caught up lately."""
    last = window[-1].offset
    return any(end <= last for end in broker_offsets)


def partition_status(
    window: Sequence[Commit],
    *,
    broker_offsets: Sequence[int],
    current_lag: int,
    now_ms: int,
    allowed_lag: int = 0,
) -> Status:
    """A partition's status from its window (Burrow's ``calculatePartitionStatus``).

    ``window``: the partition's commits, oldest first; ``broker_offsets``: the log-end offsets
    sampled lately; ``current_lag``: the latest log-end offset minus the last commit.
    """
    if not window or current_lag <= allowed_lag:
        return Status.OK
    if _stopped(window, now_ms) and not _recent_lag_zero(window, broker_offsets):
        return Status.STOP
    rewind = _rewind_index(window)
    if rewind > 0 and not _rewind_recovered(window, rewind):
        return Status.REWIND
    if _lag_always_not_zero(window, allowed_lag):
        if _stalled(window):
            return Status.STALL
        if _lag_not_decreasing(window):
            return Status.WARN
    return Status.OK


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe of ``statuses``; OK for none.

    >>> worst([Status.OK, Status.STOP, Status.WARN])
    <Status.STOP: 'STOP'>
    """
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


def group_status(statuses: Iterable[Status]) -> Status:
    """A group's status from its partitions': OK, WARN, or ERR for STOP, STALL and REWIND.

    >>> group_status([Status.OK, Status.WARN]), group_status([Status.WARN, Status.STALL])
    (<Status.WARN: 'WARN'>, <Status.ERR: 'ERR'>)
    """
    found = worst(statuses)
    return Status.ERR if found.severity > Status.ERR.severity else found
