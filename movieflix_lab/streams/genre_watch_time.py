"""Average watch time per genre, in tumbling and hopping windows, from ``watch-history``.

The seed's Kafka Streams sketch ``groupBy(genre).windowedBy(30 min).count()`` and more:
per genre and window, the count of finished viewings, the sum of seconds watched and their
mean. Two window shapes run side by side: tumbling (default 30 min) and hopping (30 min
every 5 min), both computed from shared 5-minute panes (:mod:`movieflix_lab.streams.panes`:
one state update per record instead of one per window, with the results of Quix's windows).
A window is emitted once, when it closes: when the genre's event time passes its end plus
the grace period (Quix's per-key closing; every genre sees steady traffic).
Per-key rather than partition-wide closing on purpose: Quix 3.28's partition-wide closing
compares a record older than the last closed window with that window's end *minus the grace
again*, so a record between one and two grace periods late lands in a window already emitted
and is neither counted late nor emitted.

Late events: a record arriving more than ``grace`` after its window's end cannot change an
emitted result. It is counted (:class:`~movieflix_lab.streams.app.LateEvents`) and written to
``analytics.late-events``, never silently dropped.

Event time: records are re-keyed by genre (``group_by``), so records from all of
``watch-history``'s partitions meet in one re-keyed partition in the order they were
consumed; a catch-up reads each partition's backlog in large chunks. Windows therefore close
on the re-keyed partition's *watermark* (the minimum over the source partitions of their
progress, :mod:`movieflix_lab.streams.watermarks`), and a record is late only if it is late
in its own source partition's order: the default 5-minute grace period holds for a live
stream, a catch-up, a replay and a restart alike, and the windows equal a batch
computation over the same records (:mod:`movieflix_lab.lab.reconcile` checks it).

Results (one JSON record per genre and window, key = genre)::

    {"genre": "drama", "window_start": "2026-03-02T18:00:00Z", "window_end": "...",
     "window_ms": 1800000, "hop_ms": 0, "count": 42, "sum_seconds": 151234.5,
     "mean_seconds": 3600.8}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame

from movieflix_lab.kafka.catalog import (
    WATCH_HISTORY,
    TopicSpec,
    derived_topic,
    genre_watch_time_names,
)
from movieflix_lab.kafka.serde import EventDeserializer
from movieflix_lab.sinks.postgres import watch_row
from movieflix_lab.streams.app import LateEvents, SinkFactory
from movieflix_lab.streams.panes import PaneWindows, Shape
from movieflix_lab.streams.regroup import Replays, regroup
from movieflix_lab.streams.watermarks import SourceClock

__all__ = ["GenreWatchTimeOptions", "build", "output_topics"]


@dataclass(frozen=True)
class GenreWatchTimeOptions:
    window: timedelta = timedelta(minutes=30)
    hop: timedelta = timedelta(minutes=5)
    grace: timedelta = timedelta(minutes=5)
    #: A source partition with nothing to read and no record for this long (wall clock)
    #: moves on with the wall clock (streams/watermarks.py).
    idle_timeout_s: float = 5.0


def output_topics(options: GenreWatchTimeOptions) -> tuple[TopicSpec, TopicSpec]:
    """The tumbling and the hopping results' topics for these window sizes."""
    tumbling, hopping = genre_watch_time_names(options.window, options.hop)
    return (
        derived_topic(tumbling, "genre watch time, tumbling", "genre"),
        derived_topic(hopping, "genre watch time, hopping", "genre"),
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _result(window_ms: int, hop_ms: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def shape(value: dict[str, Any]) -> dict[str, Any]:
        count, total = value["count"], value["sum"]
        return {
            "genre": value["key"],
            "window_start": _iso(value["start"]),
            "window_end": _iso(value["end"]),
            "window_start_ms": value["start"],
            "window_ms": window_ms,
            "hop_ms": hop_ms,
            "count": count,
            "sum_seconds": total,
            "mean_seconds": total / count if count else None,
        }

    return shape


def _genre(result: dict[str, Any]) -> str:
    return str(result["genre"])


def build(
    app: Application,
    options: GenreWatchTimeOptions | None = None,
    *,
    late: LateEvents | None = None,
    sink_for: SinkFactory | None = None,
    replays: Replays | None = None,
    on_window: Callable[[str], Callable[[Any], None]] | None = None,
) -> StreamingDataFrame:
    """Add the genre watch-time pipeline to ``app``; returns the tumbling results.

    ``on_window(name)``, when given, makes a callback that hears each result of window
    ``name`` (``genre_watch_time.tumbling``, ``genre_watch_time.hopping``): the metrics."""
    options = options or GenreWatchTimeOptions()
    tumbling_topic, hopping_topic = output_topics(options)
    source = app.topic(
        WATCH_HISTORY.name, key_deserializer="str", value_deserializer=EventDeserializer()
    )
    sdf = app.dataframe(source)
    for sink in sink_for("rows") if sink_for else []:  # the viewings themselves
        sdf.apply(watch_row).sink(sink)
    window_ms = int(options.window.total_seconds() * 1000)
    hop_ms = int(options.hop.total_seconds() * 1000)
    grace_ms = int(options.grace.total_seconds() * 1000)
    # Both shapes from shared panes: one state update per record, not one per window.
    windows = PaneWindows(
        (Shape("tumbling", window_ms, window_ms), Shape("hopping", window_ms, hop_ms)),
        field="seconds_watched",
        grace_ms=grace_ms,
        on_late=late,
    )
    clock = SourceClock(
        tick_ms=windows.pane_ms, offset_ms=grace_ms, idle_timeout_s=options.idle_timeout_s
    )
    exactly_once = app.config.exactly_once
    sdf = regroup(sdf, "genre", name="genre", exactly_once=exactly_once, replays=replays,
                  app=app, clock=clock)  # fmt: skip
    closed = windows.apply_to(sdf)
    outputs = {"tumbling": (tumbling_topic, 0), "hopping": (hopping_topic, hop_ms)}
    results = {}
    for name, (topic, hop) in outputs.items():
        shaped = closed.filter(lambda value, name=name: value["window"] == name)  # type: ignore[misc]
        shaped = shaped.apply(_result(window_ms, hop))
        if on_window is not None:
            shaped = shaped.update(on_window(f"genre_watch_time.{name}"))
        shaped.to_topic(
            app.topic(topic.name, key_serializer="str", value_serializer="json"), key=_genre
        )
        for sink in sink_for(name) if sink_for else []:
            shaped.sink(sink)
        results[name] = shaped
    return results["tumbling"]
