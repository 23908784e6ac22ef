"""Re-keying (``group_by``) that counts every record once, under at-least-once too.

Quix re-keys a stream by producing each record to a repartition topic and reading it back.
Its state is safe across a crash: a store recovers only the changelog of offsets that were
committed. The repartition topic is not: under at-least-once, records an app re-keyed after
its last commit are re-keyed again when the app (or whoever takes its partitions over)
replays them, and the downstream window then counts both copies. Under exactly-once the
first copies were in a transaction that is aborted, and never delivered.

So under at-least-once :func:`regroup` stamps each record with where it came from (a
header: source topic, partition, offset) before the re-key, and after it keeps, in the
re-keyed key's state, the highest source offset taken from each source partition. A copy at
or below that mark is a replay and is dropped (and counted). This is exact because one
source partition's records reach a given re-keyed partition in source order: they are
produced in that order by one idempotent producer (no reordering on retries), and the mark
lives in the same store as the window it guards, so a crash rolls both back together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from quixstreams import Application, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.state import State

from movieflix_lab.streams.watermarks import SourceClock

__all__ = ["SOURCE_HEADER", "Replays", "regroup"]

#: The header carrying a re-keyed record's source: ``topic/partition/offset``.
SOURCE_HEADER = "movieflix-source"
#: State entry ``regroup:<topic>/<partition>``: the highest source offset taken from there.
MARK_PREFIX = "regroup:"


@dataclass
class Replays:
    """Counts re-keyed copies dropped as replays (0 unless an app replayed after a crash)."""

    dropped: int = 0


def _stamp(
    value: Any, key: Any, timestamp: int, headers: Sequence[tuple[str, str | bytes]]
) -> list[tuple[str, str | bytes]]:
    context = message_context()
    source = f"{context.topic}/{context.partition}/{context.offset}".encode()
    return [(name, raw) for name, raw in headers if name != SOURCE_HEADER] + [
        (SOURCE_HEADER, source)
    ]


def source_of(headers: Any) -> tuple[str, int] | None:
    """``("topic/partition", offset)`` from a stamped record's headers, or None.

    >>> source_of([("movieflix-source", b"watch-history/3/1041")])
    ('watch-history/3', 1041)
    >>> source_of(None) is None
    True
    """
    for name, raw in headers or ():
        if name == SOURCE_HEADER:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            where, _, offset = text.rpartition("/")
            return where, int(offset)
    return None


class FirstDelivery:
    """The stateful filter after the re-key: keeps a record unless its source was seen.

    One state entry per (re-keyed key, source partition): the offset, as 8 bytes (cheaper
    than a serialised value; each state read and write is a few microseconds of Python).
    """

    def __init__(self, replays: Replays | None = None, ttl: timedelta | None = None):
        self.replays = replays if replays is not None else Replays()
        self.ttl = ttl

    def __call__(self, value: Any, key: Any, timestamp: int, headers: Any, state: State) -> bool:
        source = source_of(headers)
        if source is None:  # not stamped: re-keyed by something else, nothing to compare
            return True
        where, offset = source
        mark = MARK_PREFIX + where
        seen = state.get_bytes(mark)
        if seen is not None and offset <= int.from_bytes(seen, "big", signed=True):
            self.replays.dropped += 1
            return False
        state.set_bytes(mark, offset.to_bytes(8, "big", signed=True), ttl=self.ttl)
        return True


def regroup(
    sdf: StreamingDataFrame,
    key: str | Callable[[Any], Any],
    *,
    name: str,
    exactly_once: bool,
    replays: Replays | None = None,
    ttl: timedelta | None = None,
    app: Application | None = None,
    clock: SourceClock | None = None,
    stamped: bool = False,
) -> StreamingDataFrame:
    """``sdf.group_by(key, name=name)``, without the at-least-once replay's double counts.

    With ``clock`` (and the ``app`` it writes its markers through), each record is stamped
    with its source partition's event-time progress and the re-keyed topic receives that
    partition's watermark markers (:mod:`movieflix_lab.streams.watermarks`): what windows
    after the re-key close on.

    Under exactly-once the replay check is off: there is nothing to drop. ``ttl`` (event
    time) expires the marks of keys that stop appearing (re-keying by IP makes many);
    without it they stay. ``stamped``: the clock already ran on ``sdf`` (it shares the
    progress with another branch).
    """
    source = sdf
    if clock is not None and not stamped:  # both stamps in one header step
        sdf = clock.apply_to(sdf, also=None if exactly_once else _stamp)
    elif not exactly_once:
        sdf = sdf.set_headers(_stamp)
    grouped = sdf.group_by(key, name=name)
    if clock is not None:
        if app is None:
            raise ValueError("regroup: a clock writes its markers through the app: pass app=")
        clock.attach(app, source, grouped)
    if exactly_once:
        return grouped
    return grouped.filter(FirstDelivery(replays, ttl), stateful=True, metadata=True)
