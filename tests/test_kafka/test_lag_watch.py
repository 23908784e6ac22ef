"""Lag watched over a window on a real broker: commits read back from ``__consumer_offsets``
with their timestamps, and Burrow's statuses for groups that keep up, stall and stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.kafka.catalog import TopicSpec, create_topics
from movieflix_lab.kafka.client import consumer, producer
from movieflix_lab.kafka.commits import OffsetCommitLog
from movieflix_lab.kafka.lag import watch_lag
from movieflix_lab.kafka.lag_status import Status


def _commit(settings: Settings, group: str, topic: str, offset: int) -> None:
    member = consumer(settings, group_id=group, **{"enable.auto.commit": False})
    try:
        member.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        member.close()


@contextmanager
def _running(*loops: object) -> Iterator[threading.Event]:
    """Run each ``loop(stop)`` in a thread until the block ends."""
    stop = threading.Event()
    threads = [threading.Thread(target=loop, args=(stop,), daemon=True) for loop in loops]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def test_the_commit_log_has_each_commit_with_its_time(
    kafka: Settings, unique_topic: str, group_prefix: str
) -> None:
    create_topics(kafka, specs=[TopicSpec(unique_topic, "test", "none", {}, partitions=1)])
    group = f"{group_prefix}log"
    before = int(time.time() * 1000)
    for offset in (3, 5, 8):
        _commit(kafka, group, unique_topic, offset)
    with OffsetCommitLog(kafka, [group]) as log:
        commits = log.history()
        assert [(c.group, c.topic, c.partition, c.offset) for c in commits] == [
            (group, unique_topic, 0, offset) for offset in (3, 5, 8)
        ]
        assert all(before - 1000 <= c.timestamp_ms <= time.time() * 1000 for c in commits)
        _commit(kafka, group, unique_topic, 13)
        assert [c.offset for c in log.follow(2.0)] == [13]


def test_keeping_up_is_ok_stalling_and_stopping_are_errors(
    kafka: Settings, unique_topic: str, group_prefix: str
) -> None:
    create_topics(kafka, specs=[TopicSpec(unique_topic, "test", "none", {}, partitions=1)])
    keeps_up, stalls, stops = (f"{group_prefix}{name}" for name in ("ok", "stall", "stop"))
    writer = producer(kafka)
    for i in range(20):
        writer.produce(unique_topic, f"{i}".encode(), partition=0)
    writer.flush(30)
    _commit(kafka, stops, unique_topic, 5)  # then never again
    _commit(kafka, stalls, unique_topic, 7)

    def produce(stop: threading.Event) -> None:
        while not stop.is_set():
            writer.produce(unique_topic, b"more", partition=0)
            writer.flush(10)
            stop.wait(0.1)

    def read_and_commit(stop: threading.Event) -> None:
        reader = consumer(kafka, group_id=keeps_up, **{"enable.auto.commit": False})
        reader.subscribe([unique_topic])
        try:
            while not stop.is_set():
                messages = reader.consume(num_messages=100, timeout=0.3)
                if messages:
                    reader.commit(asynchronous=False)
        finally:
            reader.close()

    def commit_the_same_offset(stop: threading.Event) -> None:
        while not stop.wait(0.5):
            _commit(kafka, stalls, unique_topic, 7)

    with _running(produce, read_and_commit, commit_the_same_offset):
        time.sleep(2)  # the reader joins its group and catches up
        seen: list[tuple[int, int]] = []
        watch = watch_lag(
            kafka, [keeps_up, stalls, stops], window=4, interval=1,
            progress=lambda n, total: seen.append((n, total)),
        )  # fmt: skip
    assert seen == [(n, 5) for n in range(1, 6)] and len(watch.sampled_at) == 5
    groups = {g.group: g for g in watch.groups}
    assert (groups[keeps_up].status, groups[keeps_up].worst) == (Status.OK, Status.OK)
    assert (groups[stalls].status, groups[stalls].worst) == (Status.ERR, Status.STALL)
    assert (groups[stops].status, groups[stops].worst) == (Status.ERR, Status.STOP)
    [stopped] = groups[stops].partitions
    assert stopped.committed == 5 and stopped.commits == 1
    assert len(stopped.lags) == 5 and stopped.lags[-1] > stopped.lags[0]  # producers went on
    assert groups[stalls].partitions[0].commits >= 5
    assert {g.group for g in watch.not_ok()} == {stalls, stops}
    assert groups[stops].describe() == f"{stops} ERR (STOP on 1 of 1 partitions)"
