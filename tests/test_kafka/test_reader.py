"""Bounded snapshot reads of a real topic, by offsets and by record time."""

import json
import time

from movieflix_lab.config import Settings
from movieflix_lab.kafka.catalog import TopicSpec, create_topics
from movieflix_lab.kafka.client import producer
from movieflix_lab.kafka.reader import read_topic

HOUR = 3_600_000
# Yesterday, on the hour: well inside the broker's retention.
T0 = (int(time.time() * 1000) // HOUR - 24) * HOUR


def _produce(settings: Settings, topic: str, stamps: list[int]) -> None:
    writer = producer(settings)
    for i, ms in enumerate(stamps):
        writer.produce(topic, json.dumps({"n": i, "ms": ms}).encode(), key=b"k", partition=0,
                       timestamp=ms)  # fmt: skip
    assert writer.flush(30) == 0


def test_a_time_range_keeps_every_record_stamped_in_it_even_out_of_order(
    kafka: Settings, unique_topic: str
) -> None:
    create_topics(kafka, specs=[TopicSpec(unique_topic, "test", "none", {}, partitions=1)])
    # Stamps out of order, as late events and backfills make them: a record stamped after
    # the range comes before records inside it.
    stamps = [T0 - HOUR, T0 + 3 * HOUR, T0 + HOUR, T0 - 2 * HOUR, T0 + 2 * HOUR - 1, T0]
    _produce(kafka, unique_topic, stamps)
    got: list[dict] = []
    snapshot = read_topic(kafka, unique_topic, got.extend, start_ms=T0, end_ms=T0 + 2 * HOUR,
                          metadata=True)  # fmt: skip
    expected = [i for i, ms in enumerate(stamps) if T0 <= ms < T0 + 2 * HOUR]
    assert [r["n"] for r in got] == expected == [2, 4, 5]
    assert all(r["_timestamp"] == r["ms"] for r in got)
    assert snapshot.records == 3
    # The read starts at the first record stamped ≥ start; the rest outside is counted.
    assert snapshot.offsets == {0: [1, 6]} and snapshot.outside == 2

    # Pinned to the same offsets and times, a later read gives the same records.
    _produce(kafka, unique_topic, [T0 + HOUR])
    again: list[dict] = []
    read_topic(kafka, unique_topic, again.extend, ranges=snapshot.offsets, start_ms=T0,
               end_ms=T0 + 2 * HOUR)  # fmt: skip
    assert [r["n"] for r in again] == expected
    fresh: list[dict] = []
    read_topic(kafka, unique_topic, fresh.extend, start_ms=T0, end_ms=T0 + 2 * HOUR)
    assert len(fresh) == len(expected) + 1


def test_without_a_range_everything_up_to_the_end_offsets_is_read(
    kafka: Settings, unique_topic: str
) -> None:
    create_topics(kafka, specs=[TopicSpec(unique_topic, "test", "none", {}, partitions=1)])
    _produce(kafka, unique_topic, [T0 + i for i in range(5)])
    got: list[dict] = []
    snapshot = read_topic(kafka, unique_topic, got.extend, max_records=3)
    assert [r["n"] for r in got] == [0, 1, 2] and snapshot.truncated
    everything: list[dict] = []
    assert read_topic(kafka, unique_topic, everything.extend).offsets == {0: [0, 5]}
    assert len(everything) == 5
