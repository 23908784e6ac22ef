"""The PostgreSQL sink against a real PostgreSQL server (no Kafka needed)."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from quixstreams.sinks import SinkBackpressureError, SinkBatch

from movieflix_lab.sinks.postgres import TABLES, PostgresSink, create_tables, watch_row
from tests.fixtures.kafka import free_port


def _batch(values: list[dict], first_offset: int = 0) -> SinkBatch:
    batch = SinkBatch(topic="analytics.genre-watch-time.30m", partition=0)
    for i, value in enumerate(values):
        batch.append(value=value, key=None, timestamp=0, headers=[], offset=first_offset + i)
    return batch


def _window(genre: str, start_ms: int, count: int, total: float) -> dict:
    return {
        "genre": genre, "window_start": "2026-11-23T18:00:00Z",
        "window_end": "2026-11-23T18:30:00Z", "window_start_ms": start_ms,
        "window_ms": 1_800_000, "hop_ms": 0, "count": count, "sum_seconds": total,
        "mean_seconds": total / count,
    }  # fmt: skip


def test_a_replayed_batch_upserts_instead_of_duplicating(fresh_database: str) -> None:
    postgres = fresh_database
    sink = PostgresSink(postgres, TABLES["genre_watch_time"])
    sink.setup()
    first = [_window("drama", 1_000, 3, 30.0), _window("comedy", 1_000, 2, 50.0)]
    sink.write(_batch(first))
    sink.write(_batch(first))  # at-least-once redelivery of the same batch
    sink.write(_batch([_window("drama", 1_000, 4, 44.0)], first_offset=2))  # a corrected result
    with psycopg.connect(postgres) as connection:
        rows = connection.execute(
            "SELECT genre, count, sum_seconds, mean_seconds, window_start FROM genre_watch_time"
            " ORDER BY genre"
        ).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("comedy", 2, 50.0, 25.0),
        ("drama", 4, 44.0, 11.0),
    ]
    assert rows[0][4].isoformat() == "2026-11-23T18:00:00+00:00"
    assert sink.rows_written == 5


def test_watch_history_rows_and_jsonb(fresh_database: str) -> None:
    postgres = fresh_database
    create_tables(postgres)  # all of them, twice: idempotent
    create_tables(postgres)
    event_id = str(uuid.uuid4())
    record = {
        "event_id": event_id, "user_id": "u1", "movie_id": "m1", "genre": "drama",
        "started_at": "2026-11-23T18:00:00Z", "timestamp": "2026-11-23T19:00:00Z",
        "seconds_watched": 3600.0, "movie_duration_s": 5400.0, "completion_ratio": 0.6667,
        "session_id": "s1", "device_id": "d1", "event_type": "watch", "schema_version": 1,
    }  # fmt: skip
    rows = PostgresSink(postgres, TABLES["watch_history"])
    rows.write(_batch([watch_row(record), watch_row(record)]))
    total = PostgresSink(postgres, TABLES["search_volume_total"])
    top = [{"query": "noir", "count": 3}]
    total.write(_batch([{"window_start": "2026-11-23T18:00:00Z", "window_start_ms": 1,
                         "window_ms": 1_800_000, "count": 3, "distinct_queries": 1,
                         "top_queries": top}]))  # fmt: skip
    with psycopg.connect(postgres) as connection:
        viewings = connection.execute("SELECT event_id::text, ended_at FROM watch_history")
        assert [(r[0], r[1].hour) for r in viewings.fetchall()] == [(event_id, 19)]
        stored = connection.execute("SELECT top_queries FROM search_volume_total").fetchone()
        assert stored is not None and stored[0] == top


def test_an_unreachable_server_pauses_the_app_rather_than_losing_the_batch() -> None:
    dead = f"postgresql://movieflix@127.0.0.1:{free_port()}/movieflix?connect_timeout=2"
    sink = PostgresSink(dead, TABLES["genre_watch_time"], retry_after=1.5)
    with pytest.raises(SinkBackpressureError) as raised:
        sink.write(_batch([_window("drama", 1_000, 3, 30.0)]))
    assert raised.value.retry_after == 1.5 and sink.rows_written == 0
