"""Event time: every closed window equals the batch computation however a backlog is read.

Default 5-minute grace, no override. The batch side is :mod:`movieflix_lab.lab.reconcile`
(polars over the source topic's committed offsets, lateness judged in each record's own
partition) or, where compaction may have removed superseded viewings from old records, a
polars computation over the simulator's own events.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from confluent_kafka import TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.events import EventBase
from movieflix_lab.kafka.catalog import create_topics, partition_for_user
from movieflix_lab.kafka.client import consumer
from movieflix_lab.kafka.event_writer import EventWriter
from movieflix_lab.lab.reconcile import Reconciliation, reconcile_analytics
from movieflix_lab.reports import run_report
from movieflix_lab.simulate import SimulationConfig, Simulator
from movieflix_lab.sinks.parquet import read_results
from movieflix_lab.streams.app import LATE_EVENTS_TOPIC
from movieflix_lab.streams.runner import GENRE_KEYS, run_app
from tests.fixtures.streams import batch_windows, watch_frame

pytestmark = pytest.mark.slow

HOUR = timedelta(hours=1)
HOP_MS = 5 * 60_000


def _recent(hours: float) -> datetime:
    """A start ``hours`` of simulated time back from an hour ago: records under a day old,
    which compaction of ``watch-history`` leaves alone."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - HOUR - timedelta(hours=hours)


@pytest.fixture
def broker(empty_kafka: Settings) -> Settings:
    """The session's broker emptied for the test: each test reads its topics from the start."""
    create_topics(empty_kafka)
    return empty_kafka


def _send(settings: Settings, events: list[EventBase]) -> None:
    with EventWriter(settings) as writer:
        for event in events:
            writer.send(event)


def _group(settings: Settings) -> str:
    return f"{settings.stream_group_prefix}analytics"


def _assert_all_equal(result: Reconciliation, *, at_least: int) -> None:
    for check in result.checks:
        assert check.ok, (check.line(), check.windows.filter(pl.col("status") != "equal").head())
        assert check.closed >= at_least, check.line()


def _late_ids(settings: Settings) -> list[tuple[str, str, int]]:
    """(event id, window, window start) of every record in ``analytics.late-events``."""
    reader = consumer(settings)
    reader.assign([TopicPartition(LATE_EVENTS_TOPIC, p, 0) for p in range(6)])
    rows = []
    for _ in range(8):
        for message in reader.consume(1000, timeout=0.5):
            if not message.error():
                record = json.loads(message.value())
                rows.append((record["value"]["event_id"], record["window"],
                             record["window_start_ms"]))  # fmt: skip
    reader.close()
    return rows


def test_a_four_hour_backlog_with_late_devices_equals_the_batch(broker: Settings) -> None:
    """Caught up in one go; 1% of viewings and searches arrive 20 minutes late. Those, and
    only those, are late, each written once to ``analytics.late-events``."""
    config = SimulationConfig(seed=21, users=2000, movies=400, minutes=240, activity=5,
                              start=_recent(4), late_share=0.02,
                              late_by=timedelta(minutes=20))  # fmt: skip
    simulator = Simulator(config)
    events = list(simulator.events())
    labelled = {str(i) for i in simulator.late_event_ids}
    # How many depends on the hour the test runs: the simulated day is busy in the evening
    # and quiet at night, and the backlog is the four hours before an hour ago.
    assert len(labelled) > 10
    _send(broker, events)
    summary = run_app(broker, "analytics", timeout=10)
    assert summary.outstanding == 0 and summary.dead_letters == 0, summary

    result = reconcile_analytics(broker, group=_group(broker))
    _assert_all_equal(result, at_least=7)
    assert result.checks[0].closed > 50 and result.checks[1].closed > 300
    late = _late_ids(broker)
    assert len(late) == len(set(late)), "a late (record, window) written twice"
    late_events = {event_id for event_id, _, _ in late}
    assert late_events <= labelled  # only the labelled ones
    # Which viewings are late, computed from the simulator's own send order: late for its
    # earliest hopping window when that ended by its partition's progress minus the grace.
    progress: dict[int, int] = {}
    expected = set()
    for e in events:
        if e.event_type != "watch":
            continue
        where = partition_for_user(e.user_id, 6)
        first_end = max(0, e.timestamp_ms // HOP_MS * HOP_MS - 30 * 60_000 + HOP_MS) + 30 * 60_000
        if first_end <= progress.get(where, -(2**62)) - 5 * 60_000:
            expected.add(str(e.event_id))
        progress[where] = max(progress.get(where, e.timestamp_ms), e.timestamp_ms)
    assert expected and expected <= labelled  # nine at 07:50 UTC, many more in the evening
    viewings = {str(e.event_id) for e in events if e.event_type == "watch"} & late_events
    assert viewings == expected
    assert result.checks[1].late_records == len(expected)
    searches = late_events - viewings
    assert len(searches) == result.checks[2].late_records
    assert summary.late_events.total() == len(late)

    # The same reconciliation as a report a person reads (05-stream-vs-batch).
    report = run_report(broker, "stream-vs-batch", {})
    assert report.status == "succeeded", report.manifest["error"]
    numbers = report.manifest["key_numbers"]
    assert numbers["reconciled"] is True
    assert {name: n["closed"] for name, n in numbers.items() if name != "reconciled"} == {
        check.spec.name: check.closed for check in result.checks
    }


def test_a_five_day_sparse_backlog_equals_the_batch(broker: Settings) -> None:
    """Small volume, long span (the hard case for read order): 5 simulated days."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
        days=5, hours=3
    )
    config = SimulationConfig(seed=22, users=300, movies=300, minutes=5 * 24 * 60,
                              activity=0.3, start=start)  # fmt: skip
    events = list(Simulator(config).events())
    _send(broker, events)
    summary = run_app(broker, "analytics", timeout=10)
    assert summary.outstanding == 0 and sum(summary.late_events.values()) == 0, summary
    # Searches: the reconciliation over the topic. Viewings dated days back are compactable
    # (Kafka measures the compaction lag by record time), so they are checked against the
    # simulator's own events: in order within each partition, nothing is late.
    result = reconcile_analytics(broker, group=_group(broker))
    for check in result.checks[2:]:
        assert check.ok and check.closed > 100, check.line()
    frame = watch_frame(events)
    # Windows must be closed up to the slowest partition's progress minus the grace.
    progress: dict[int, int] = {}
    for e in events:
        if e.event_type == "watch":
            where = partition_for_user(e.user_id, 6)
            progress[where] = max(progress.get(where, 0), e.timestamp_ms)
    closes = min(progress.values()) - 5 * 60_000
    for output, hop in (("tumbling", None), ("hopping", timedelta(minutes=5))):
        got = read_results(broker.processed_dir / "genre_watch_time" / output, GENRE_KEYS)
        expected = batch_windows(frame, ["genre"], timedelta(minutes=30), hop, "seconds")
        must = expected.filter(pl.col("window_start_ms") + 30 * 60_000 <= closes)
        joined = got.join(expected, on=["genre", "window_start_ms"], how="left")
        assert got.height >= must.height > 1000, output
        assert must.join(got, on=["genre", "window_start_ms"], how="anti").is_empty(), output
        assert joined["count_right"].null_count() == 0, output  # no window the batch lacks
        assert (joined["count"] == joined["count_right"]).all(), output
        assert ((joined["sum_seconds"] - joined["sum"]).abs() < 1e-6).all(), output


def test_stopped_for_an_hour_then_restarted(broker: Settings) -> None:
    """Two hours read, the app down for an hour of traffic, then restarted: exact."""
    config = SimulationConfig(seed=23, users=1500, movies=300, minutes=180, activity=4,
                              start=_recent(3), late_share=0.01)  # fmt: skip
    events = list(Simulator(config).events())
    cut = next(i for i, e in enumerate(events) if e.timestamp_ms >= events[0].timestamp_ms
               + 2 * 3_600_000)  # fmt: skip
    _send(broker, events[:cut])
    first = run_app(broker, "analytics", timeout=10)
    assert first.outstanding == 0, first
    before = reconcile_analytics(broker, group=_group(broker))
    _assert_all_equal(before, at_least=3)
    _send(broker, events[cut:])  # the hour it was down
    second = run_app(broker, "analytics", timeout=10)
    assert second.outstanding == 0, second
    after = reconcile_analytics(broker, group=_group(broker))
    _assert_all_equal(after, at_least=5)
    assert after.checks[0].closed > before.checks[0].closed
