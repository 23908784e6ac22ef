"""Fixtures of the stream-app tests: a broker of their own (clean topics), batch references."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from movieflix_lab.config import Settings
from movieflix_lab.events import EventBase, WatchRecord
from movieflix_lab.events.models import SearchEvent
from movieflix_lab.kafka.catalog import partition_for_user
from movieflix_lab.kafka.event_writer import EventWriter
from movieflix_lab.simulate import GENRES
from movieflix_lab.streams.genre_watch_time import GenreWatchTimeOptions
from movieflix_lab.streams.runner import AnalyticsOptions
from movieflix_lab.streams.search_volume import SearchVolumeOptions
from tests.fixtures import running_broker

#: The apps' default grace period: windows close on the event-time watermark over the
#: source partitions, so a backlog needs no grace spanning it (streams/watermarks.py).
GRACE = GenreWatchTimeOptions().grace
ANALYTICS = AnalyticsOptions(
    genre=GenreWatchTimeOptions(grace=GRACE), search=SearchVolumeOptions(grace=GRACE)
)


@pytest.fixture(scope="module")
def clean_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A broker whose topics hold only what the module's tests put there."""
    with running_broker(tmp_path_factory.mktemp("streams") / "broker") as settings:
        yield settings


def heartbeats(settings: Settings, after_ms: int) -> None:
    """One record per partition of ``watch-history`` and ``search-events``, past every window
    of the run + grace.

    Quix closes a window only when a record moves event time (quix-streams#790): these move
    every source partition's progress past the run, so the watermark closes every window of
    it; their own windows stay open and are never emitted. The broker refuses records over
    an hour ahead of its clock, so the run must lie far enough in the past.
    """
    at = datetime.fromtimestamp(after_ms / 1000, UTC) + GRACE + timedelta(minutes=31)
    assert at < datetime.now(UTC) + timedelta(minutes=50), "the run is too recent to close"
    users, n = {}, 0
    while len(users) < 6:
        users.setdefault(partition_for_user(f"heartbeat-{n}", 6), f"heartbeat-{n}")
        n += 1
    with EventWriter(settings) as writer:
        for i, user in enumerate(users.values()):
            writer.send(WatchRecord(
                event_id=uuid.uuid4(), user_id=user, timestamp=at, started_at=at,
                movie_id="heartbeat", genre=GENRES[i % len(GENRES)], session_id="heartbeat",
                device_id="heartbeat", seconds_watched=0, movie_duration_s=1, completion_ratio=0,
            ))  # fmt: skip
            writer.send(SearchEvent(event_id=uuid.uuid4(), user_id=user, timestamp=at,
                                    query="heartbeat", result_count=0, device_id="hb"))  # fmt: skip


def _ms(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)


def watch_frame(events: list[EventBase]) -> pl.DataFrame:
    rows = [(e.genre, e.timestamp_ms, e.seconds_watched) for e in events if e.event_type == "watch"]
    return pl.DataFrame(rows, schema=["genre", "ts", "seconds"], orient="row")


def batch_windows(frame: pl.DataFrame, by: list[str], window: timedelta, hop: timedelta | None,
                  value: str | None = None) -> pl.DataFrame:  # fmt: skip
    """Count (and sum ``value``) per ``by`` and window, computed in one batch with polars.

    Each record belongs to every window [start, start + window) that contains its timestamp;
    starts are multiples of ``hop`` (of ``window`` for tumbling windows).
    """
    size, step = _ms(window), _ms(hop or window)
    per_record = size // step
    expanded = (
        frame.with_columns(
            first=(pl.col("ts") // step) * step,
            k=pl.lit(list(range(per_record))),
        )
        .explode("k")
        .with_columns(window_start_ms=pl.col("first") - pl.col("k") * step)
    )
    expanded = expanded.filter(
        (pl.col("window_start_ms") <= pl.col("ts"))
        & (pl.col("ts") < pl.col("window_start_ms") + size)
        & (pl.col("window_start_ms") >= 0)
    )
    aggregations = [pl.len().alias("count")]
    if value:
        aggregations.append(pl.col(value).sum().alias("sum"))
    return expanded.group_by([*by, "window_start_ms"]).agg(aggregations)
