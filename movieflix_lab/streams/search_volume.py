"""Search volume from ``search-events``: per user and in total per window, with top queries.

Per user: the message key is already the user id, so each user's searches are counted in
place. In total: records are re-keyed to one group (``all``) and counted, with the query
counts of the window reduced to its ten most frequent queries when it closes (a
:class:`~movieflix_lab.streams.panes.PaneWindows` tally: each record updates its window's
count and its query's, where a Quix window rewrote the whole query table). A window is
emitted once it closes (event time past its end plus the grace period); late records are
counted like the genre app's.

Per-user windows close partition-wide (a user who never searches again must still get their
window emitted), and Quix 3.28's partition-wide closing has a gap: a record older than the
last closed window is compared with that window's end minus the grace *again*, so one
between one and two grace periods late would land in a window already emitted, neither
emitted nor counted late. :class:`PartitionLateGuard` closes the gap: it judges each record
by its partition's event-time progress before it (kept in the partition's state by the
:class:`~movieflix_lab.streams.watermarks.SourceClock`, so a restart or a new owner of the
partition judges exactly as before) and counts such records late before they reach the
window. The total windows are re-keyed into one group and close on the watermark over the
source partitions (:mod:`movieflix_lab.streams.watermarks`), as the genre windows do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from quixstreams import Application, message_context
from quixstreams.dataframe import StreamingDataFrame

from movieflix_lab.kafka.catalog import (
    SEARCH_EVENTS,
    TopicSpec,
    derived_topic,
    search_volume_names,
)
from movieflix_lab.kafka.serde import EventDeserializer
from movieflix_lab.streams.app import LateEvents, SinkFactory
from movieflix_lab.streams.genre_watch_time import _iso
from movieflix_lab.streams.panes import PaneWindows, Shape
from movieflix_lab.streams.regroup import Replays, regroup
from movieflix_lab.streams.watermarks import SourceClock

__all__ = ["PartitionLateGuard", "SearchVolumeOptions", "build", "output_topics"]

TOP_QUERIES = 10


@dataclass(frozen=True)
class SearchVolumeOptions:
    window: timedelta = timedelta(minutes=30)
    grace: timedelta = timedelta(minutes=5)
    #: As the genre app's: a quiet source partition moves on with the wall clock.
    idle_timeout_s: float = 5.0


def output_topics(options: SearchVolumeOptions) -> tuple[TopicSpec, TopicSpec]:
    per_user, total = search_volume_names(options.window)
    return (
        derived_topic(per_user, "searches per user per window", "user id"),
        derived_topic(total, "searches and top queries", "all"),
    )


def normalise_query(query: str) -> str:
    """Queries count together whatever their case or spacing.

    >>> normalise_query("  Space   Opera ")
    'space opera'
    """
    return " ".join(query.lower().split())


def _top(counts: dict[str, int]) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_QUERIES]
    return [{"query": query, "count": count} for query, count in ranked]


class PartitionLateGuard:
    """Counts and drops records whose window the partition has already closed.

    Used as ``sdf.filter(guard, metadata=True)`` in front of a tumbling window closed
    partition-wide: Quix closes, on a partition whose latest event time is ``t``, every
    window ending at or before ``t - grace`` (rounded down to the window size).
    """

    def __init__(self, window_ms: int, grace_ms: int, late: LateEvents | None, store: str,
                 clock: SourceClock) -> None:  # fmt: skip
        self.window_ms, self.grace_ms, self.late, self.store = window_ms, grace_ms, late, store
        self.clock = clock

    def __call__(self, value: Any, key: Any, timestamp: int, headers: Any) -> bool:
        context = message_context()
        latest = max(self.clock.before, timestamp)
        closed_until = (latest - self.grace_ms) // self.window_ms * self.window_ms
        start = timestamp // self.window_ms * self.window_ms
        if start + self.window_ms > closed_until:
            return True
        if self.late is not None:
            self.late(value, key, timestamp, latest - self.grace_ms - timestamp, start,
                      start + self.window_ms, self.store, context.topic, context.partition,
                      context.offset)  # fmt: skip
        return False


def build(
    app: Application,
    options: SearchVolumeOptions | None = None,
    *,
    late: LateEvents | None = None,
    sink_for: SinkFactory | None = None,
    replays: Replays | None = None,
    on_window: Callable[[str], Callable[[Any], None]] | None = None,
) -> StreamingDataFrame:
    """Add the search-volume pipeline to ``app``; returns the per-user results."""
    options = options or SearchVolumeOptions()
    per_user_topic, total_topic = output_topics(options)
    window_ms = int(options.window.total_seconds() * 1000)
    source = app.topic(
        SEARCH_EVENTS.name, key_deserializer="str", value_deserializer=EventDeserializer()
    )
    sdf = app.dataframe(source)

    grace_ms = int(options.grace.total_seconds() * 1000)
    # Every search's partition progress, before the branches: the per-user guard reads it,
    # and the total's re-key carries it on (stamps and markers).
    clock = SourceClock(tick_ms=window_ms, offset_ms=grace_ms,
                        idle_timeout_s=options.idle_timeout_s)  # fmt: skip
    sdf = clock.apply_to(sdf)
    guard = PartitionLateGuard(
        window_ms, grace_ms, late, f"per-user_tumbling_window_{window_ms}_count", clock
    )
    per_user = (
        sdf.filter(guard, metadata=True)
        .tumbling_window(options.window, grace_ms=options.grace, name="per-user", on_late=late)
        .count()
        .final(closing_strategy="partition")
    )
    per_user = per_user.apply(
        lambda value, key, timestamp, headers: {
            "user_id": key,
            "window_start": _iso(value["start"]),
            "window_start_ms": value["start"],
            "window_ms": window_ms,
            "count": value["value"],
        },
        metadata=True,
    )
    if on_window is not None:  # the metrics: results per window
        per_user = per_user.update(on_window("search_volume.per_user"))
    per_user.to_topic(app.topic(per_user_topic.name, value_serializer="json"))
    for sink in sink_for("per_user") if sink_for else []:
        per_user.sink(sink)

    exactly_once = app.config.exactly_once
    # The count and the query tally of each window from panes (one per window here): a
    # record writes its window's count and its query's, not the window's whole query table.
    windows = PaneWindows(
        (Shape("total", window_ms, window_ms),),
        tally=lambda value: normalise_query(value["query"]),
        grace_ms=grace_ms,
        on_late=late,
    )
    everyone = regroup(sdf, lambda value: "all", name="all", exactly_once=exactly_once,
                       replays=replays, app=app, clock=clock, stamped=True)  # fmt: skip
    total = windows.apply_to(everyone).apply(
        lambda value: {
            "window_start": _iso(value["start"]),
            "window_start_ms": value["start"],
            "window_ms": window_ms,
            "count": value["count"],
            "distinct_queries": len(value["tally"]),
            "top_queries": _top(value["tally"]),
        }
    )
    if on_window is not None:
        total = total.update(on_window("search_volume.total"))
    total.to_topic(app.topic(total_topic.name, value_serializer="json"))
    for sink in sink_for("total") if sink_for else []:
        total.sink(sink)
    return per_user
