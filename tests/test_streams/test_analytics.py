"""The analytics app against an independent batch computation over the same events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import polars as pl
import psycopg
import pytest
from confluent_kafka import TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.events import WatchRecord
from movieflix_lab.kafka.catalog import create_topics
from movieflix_lab.kafka.client import consumer, producer
from movieflix_lab.kafka.event_writer import EventWriter
from movieflix_lab.simulate import KafkaSink, SimulationConfig, Simulator, run_simulation
from movieflix_lab.sinks.parquet import read_results
from movieflix_lab.streams.runner import (
    GENRE_KEYS,
    SEARCH_TOTAL_KEYS,
    SEARCH_USER_KEYS,
    RunSummary,
    run_app,
)
from movieflix_lab.streams.search_volume import normalise_query
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.kafka import with_settings
from tests.fixtures.streams import (
    ANALYTICS,
    GRACE,
    batch_windows,
    heartbeats,
    watch_frame,
)

#: 17 hours back, not the simulator's default (a day or more): ``watch-history`` is compacted
#: (a segment rolls after ``segment.ms``, 1 day, and a record may go after
#: ``min.compaction.lag.ms``, 1 day), and Kafka measures both by the records' timestamps.
#: Records dated over a day back are compactable at once: the poison messages below, dated
#: now, rolled the segment and the log cleaner removed the superseded viewings (same user,
#: same movie) before the app had read them (23 in partition 3 in one run). The run must
#: still end over 12 hours back, for the heartbeats after the replay grace to be in the past.
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=17)
CONFIG = SimulationConfig(seed=8, users=400, movies=300, minutes=240, activity=20, start=START)
POISON = [
    b"{not json",
    json.dumps({"event_type": "watch", "user_id": "u1"}).encode(),  # missing fields
    b"\xff\xfe binary",
]


@pytest.fixture(scope="module")
def processed(clean_kafka: Settings, module_database: str):  # type: ignore[no-untyped-def]
    """Run the simulator, poison, heartbeats; then the app (Parquet and PostgreSQL sinks)."""
    settings = with_settings(clean_kafka, postgres_dsn=module_database)
    create_topics(settings)
    events = list(Simulator(CONFIG).events())
    run_simulation(CONFIG, KafkaSink(settings))
    out = producer(settings)
    for topic in ("watch-history", "search-events"):
        for raw in POISON:
            out.produce(topic, key=b"u-poison", value=raw)
    assert out.flush(30) == 0
    first = run_app(settings, "analytics", timeout=5, options=ANALYTICS)  # catch up on the run
    # Only then close its windows: a genre's heartbeat consumed before that genre's records
    # from another input partition would make them late.
    assert first.outstanding == 0, first
    heartbeats(settings, max(e.timestamp_ms for e in events))
    second = run_app(settings, "analytics", timeout=5, options=ANALYTICS)  # resumes from commits
    summary = RunSummary("analytics", first.dead_letters + second.dead_letters,
                         first.late_events + second.late_events)  # fmt: skip
    return settings, events, summary


def _search_frame(events: list) -> pl.DataFrame:  # type: ignore[type-arg]
    searches = [e for e in events if e.event_type == "search"]
    return pl.DataFrame(
        [(e.user_id, e.timestamp_ms, normalise_query(e.query)) for e in searches],
        schema=["user_id", "ts", "query"], orient="row",
    )  # fmt: skip


def test_genre_windows_equal_the_batch_computation(processed) -> None:  # type: ignore[no-untyped-def]
    settings, events, summary = processed
    frame = watch_frame(events)
    for output, hop in (("tumbling", None), ("hopping", timedelta(minutes=5))):
        got = read_results(settings.processed_dir / "genre_watch_time" / output, GENRE_KEYS)
        expected = batch_windows(frame, ["genre"], timedelta(minutes=30), hop, "seconds")
        assert got.height == expected.height > 50, output
        joined = got.join(expected, on=["genre", "window_start_ms"], how="full", coalesce=True)
        assert joined.filter(pl.col("count").is_null() | pl.col("count_right").is_null()).is_empty()
        assert (joined["count"] == joined["count_right"]).all(), output
        # Seconds have one decimal: sums agree exactly at that precision, means to 1e-9.
        assert ((joined["sum_seconds"] - joined["sum"]).abs() < 1e-6).all(), output
        mean_gap = (joined["mean_seconds"] - joined["sum"] / joined["count_right"]).abs()
        assert (mean_gap < 1e-9 * joined["mean_seconds"].abs().clip(lower_bound=1)).all()
    assert summary.late_events == {}


def test_search_totals_and_top_queries_equal_the_batch_computation(processed) -> None:  # type: ignore[no-untyped-def]
    settings, events, _ = processed
    frame = _search_frame(events)
    totals = read_results(settings.processed_dir / "search_volume" / "total", SEARCH_TOTAL_KEYS)
    expected_totals = batch_windows(frame, [], timedelta(minutes=30), None)
    assert dict(zip(totals["window_start_ms"], totals["count"], strict=True)) == dict(
        zip(expected_totals["window_start_ms"], expected_totals["count"], strict=True)
    )
    # Every window's top queries (with their counts) and distinct queries, recomputed.
    for window in totals.iter_rows(named=True):
        in_window = frame.filter(
            (pl.col("ts") >= window["window_start_ms"])
            & (pl.col("ts") < window["window_start_ms"] + 1_800_000)
        )
        counts = in_window.group_by("query").len().sort(["len", "query"], descending=[True, False])
        top = [{"query": q, "count": n} for q, n in counts.head(10).iter_rows()]
        assert window["top_queries"] == top and window["distinct_queries"] == counts.height


def test_poison_goes_to_dead_letters_and_the_rest_is_processed(processed) -> None:  # type: ignore[no-untyped-def]
    settings, _, summary = processed
    # A poison message at the very end of a partition is skipped without a later offset to
    # commit, so the resumed run may dead-letter it again (at-least-once): count origins.
    assert summary.dead_letters >= 2 * len(POISON)
    reader = consumer(settings)
    reader.assign([TopicPartition("dead-letters", p, 0) for p in range(6)])
    letters = []
    for _ in range(10):
        letters += [
            json.loads(m.value()) for m in reader.consume(100, timeout=0.5) if not m.error()
        ]
    reader.close()
    distinct = {(d["origin"]["topic"], d["origin"]["partition"], d["origin"]["offset"])
                for d in letters}  # fmt: skip
    assert len(distinct) == 2 * len(POISON)
    origins = {
        (d["origin"]["topic"], d["value"].get("text") or d["value"].get("base64")) for d in letters
    }
    assert len(origins) == 2 * len(POISON)
    assert all(d["app"] == "analytics" and d["error"] and d["origin"]["offset"] is not None
               for d in letters)  # fmt: skip
    missing = next(d for d in letters if d["value"].get("text", "").startswith('{"event_type"'))
    assert "movie_id" in missing["error"]  # the error names the field


def test_search_per_user_windows_equal_the_batch_computation(processed) -> None:  # type: ignore[no-untyped-def]
    settings, events, _ = processed
    frame = _search_frame(events)
    got = read_results(settings.processed_dir / "search_volume" / "per_user", SEARCH_USER_KEYS)
    expected = batch_windows(frame, ["user_id"], timedelta(minutes=30), None)
    joined = got.join(expected, on=["user_id", "window_start_ms"], how="full", coalesce=True)
    assert got.height == expected.height > 50
    assert (joined["count"] == joined["count_right"]).all()


def test_postgres_holds_the_windows_and_the_viewings(processed) -> None:  # type: ignore[no-untyped-def]
    """The PostgreSQL sink: the same windows as the batch computation, one row per viewing."""
    settings, events, _ = processed
    dsn = settings.postgres_dsn.get_secret_value()
    frame = watch_frame(events)
    with psycopg.connect(dsn) as connection:
        for hop in (None, timedelta(minutes=5)):
            got = pl.DataFrame(
                connection.execute(
                    "SELECT genre, window_start_ms, count, sum_seconds FROM genre_watch_time"
                    " WHERE hop_ms = %s",
                    [int(hop.total_seconds() * 1000) if hop else 0],
                ).fetchall(),
                schema=["genre", "window_start_ms", "count", "sum_seconds"], orient="row",
            )  # fmt: skip
            expected = batch_windows(frame, ["genre"], timedelta(minutes=30), hop, "seconds")
            joined = got.join(expected, on=["genre", "window_start_ms"], how="full", coalesce=True)
            assert got.height == expected.height > 50
            assert (joined["count"] == joined["count_right"]).all()
            assert ((joined["sum_seconds"] - joined["sum"]).abs() < 1e-6).all()
        viewings = connection.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM watch_history"
            " WHERE user_id NOT LIKE 'heartbeat-%'"
        ).fetchone()
        assert viewings == (frame.height, frame.height)
        users = connection.execute("SELECT sum(count) FROM search_volume_user").fetchone()
        searches = sum(1 for e in events if e.event_type == "search")
        assert users is not None and users[0] == searches


def test_a_late_record_is_counted_and_kept(processed) -> None:  # type: ignore[no-untyped-def]
    """After the heartbeats, event time is past the run's windows + grace: an old record is late."""

    settings, events, _ = processed
    # Older than the run by more than the grace period: its windows closed long ago.
    first = datetime.fromtimestamp(min(e.timestamp_ms for e in events) / 1000, UTC)
    old = first - GRACE - timedelta(hours=1)
    late = WatchRecord(
        event_id=uuid.uuid4(), user_id="u-late", timestamp=old, started_at=old,
        movie_id="m-late", genre="drama", session_id="s-late", device_id="d-late",
        seconds_watched=60, movie_duration_s=600, completion_ratio=0.1,
    )  # fmt: skip
    with EventWriter(settings) as writer:
        writer.send(late)
    summary = run_app(settings, "analytics", timeout=6, options=ANALYTICS)
    # The record missed its tumbling window and its hopping windows: each is reported.
    assert summary.late_events, summary
    assert summary.dead_letters == 0

    reader = consumer(settings)
    reader.subscribe(["analytics.late-events"])
    kept = []
    for _ in range(20):
        kept += [json.loads(m.value()) for m in reader.consume(100, timeout=0.5) if not m.error()]
    reader.close()
    mine = [k for k in kept if k["value"].get("event_id") == str(late.event_id)]
    assert mine and all(k["key"] == "drama" and k["late_by_ms"] > 0 for k in mine)
    assert {k["window"] for k in mine} == set(summary.late_events)


def test_lag_command(processed) -> None:  # type: ignore[no-untyped-def]
    settings, _, _ = processed
    env = cli_env(settings)
    caught_up = run_cli("lag", "--group", "movieflix-analytics", env=env)
    assert caught_up.returncode == 0, caught_up.stderr
    rows = [line.split("│") for line in caught_up.stdout.splitlines() if line.count("│") > 5]
    watch = [row for row in rows if row[2].strip() == "watch-history"]
    assert len(watch) == 6 and all(row[-2].strip() == "0" for row in watch), caught_up.stdout

    out = producer(settings)
    for _ in range(5):
        out.produce("search-events", key=b"u-lag", value=b"{}")
    assert out.flush(30) == 0
    behind = run_cli("lag", "--group", "movieflix-analytics", "--max-lag", "2", env=env)
    assert behind.returncode == 1
    assert "above --max-lag 2" in behind.stderr
    lagging = [line.split("│") for line in behind.stdout.splitlines() if "search-events" in line]
    assert sum(int(row[-2].strip().replace(",", "")) for row in lagging) >= 5
