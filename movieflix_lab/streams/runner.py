"""Running stream apps: one process per app, bounded or until Ctrl-C."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from movieflix_lab.config import Settings
from movieflix_lab.kafka.catalog import all_topics, create_topics
from movieflix_lab.sinks.parquet import ParquetSink
from movieflix_lab.streams import genre_watch_time, search_volume
from movieflix_lab.streams.app import Guarantee, SinkFactory, StreamApp, stream_application

__all__ = ["APPS", "AnalyticsOptions", "RunSummary", "build_analytics", "run_app"]

logger = logging.getLogger(__name__)

#: Window-result keys: one result per key (the Parquet reader and the PostgreSQL upsert use them).
GENRE_KEYS = ("genre", "window_start_ms", "window_ms", "hop_ms")
SEARCH_USER_KEYS = ("user_id", "window_start_ms", "window_ms")
SEARCH_TOTAL_KEYS = ("window_start_ms", "window_ms")


@dataclass(frozen=True)
class AnalyticsOptions:
    genre: genre_watch_time.GenreWatchTimeOptions = field(
        default_factory=genre_watch_time.GenreWatchTimeOptions
    )
    search: search_volume.SearchVolumeOptions = field(
        default_factory=search_volume.SearchVolumeOptions
    )
    parquet: bool = True


@dataclass
class RunSummary:
    app: str
    dead_letters: int
    late_events: dict[str, int]


def build_analytics(stream: StreamApp, settings: Settings, options: AnalyticsOptions) -> None:
    """Genre watch time and search volume in one application (one consumer group)."""
    create_topics(
        settings,
        specs=[
            *all_topics(),
            *genre_watch_time.output_topics(options.genre),
            *search_volume.output_topics(options.search),
        ],
    )
    processed = settings.processed_dir

    def parquet(dataset: str) -> SinkFactory:
        def sink_for(output: str) -> ParquetSink | None:
            return ParquetSink(processed / dataset / output) if options.parquet else None

        return sink_for

    genre_watch_time.build(
        stream.app, options.genre, late=stream.late, sink_for=parquet("genre_watch_time")
    )
    search_volume.build(
        stream.app, options.search, late=stream.late, sink_for=parquet("search_volume")
    )


APPS: dict[str, Callable[[StreamApp, Settings, AnalyticsOptions], None]] = {
    "analytics": build_analytics,
}


def run_app(
    settings: Settings,
    name: str,
    *,
    timeout: float = 0.0,
    guarantee: Guarantee = "at-least-once",
    instance: str = "0",
    options: AnalyticsOptions | None = None,
) -> RunSummary:
    """Run stream app ``name``; with ``timeout`` it stops after that long without messages."""
    if name not in APPS:
        raise KeyError(f"no stream app {name!r}; known: {', '.join(APPS)}")
    stream = stream_application(settings, name, instance=instance, guarantee=guarantee)
    APPS[name](stream, settings, options or AnalyticsOptions())
    try:
        stream.app.run(timeout=timeout, collect=False) if timeout else stream.app.run()
    finally:
        stream.late.flush()
    return RunSummary(name, stream.dead_letters.count, dict(stream.late.by_window))
