"""Lag on a real broker, where transactions make offsets that are not records."""

import uuid

from movieflix_lab.config import Settings
from movieflix_lab.kafka.catalog import TopicSpec, create_topics
from movieflix_lab.kafka.client import consumer, producer
from movieflix_lab.kafka.lag import consumer_lag, unread


def _transaction(settings: Settings, topic: str, n: int, *, commit: bool) -> None:
    writer = producer(settings, **{"transactional.id": f"test-{uuid.uuid4().hex[:8]}"})
    writer.init_transactions(30)
    writer.begin_transaction()
    for i in range(n):
        writer.produce(topic, f"{commit}-{i}".encode(), key=b"k", partition=0)
    writer.flush(30)
    if commit:
        writer.commit_transaction(30)
    else:
        writer.abort_transaction(30)


def _commit_at(settings: Settings, group: str, topic: str, offset: int) -> None:
    from confluent_kafka import TopicPartition

    member = consumer(settings, group_id=group, **{"enable.auto.commit": False})
    try:
        member.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        member.close()


def test_markers_and_aborted_records_are_lag_but_not_left_to_read(
    kafka: Settings, unique_topic: str, group_prefix: str
) -> None:
    create_topics(kafka, specs=[TopicSpec(unique_topic, "test", "none", {}, partitions=1)])
    _transaction(kafka, unique_topic, 3, commit=True)  # offsets 0-2, commit marker at 3
    group = f"{group_prefix}lag"
    _commit_at(kafka, group, unique_topic, 3)  # all three records read
    _transaction(kafka, unique_topic, 4, commit=False)  # 4-7 aborted, abort marker at 8
    [row] = consumer_lag(kafka, [group])
    assert (row.committed, row.end, row.lag) == (3, 9, 6)
    assert unread(kafka, [row]) == 0  # nothing a read-committed consumer would ever get

    _transaction(kafka, unique_topic, 2, commit=True)  # 9-10, marker at 11
    [row] = consumer_lag(kafka, [group])
    assert row.lag == 9 and unread(kafka, [row]) == 2

    # Never committed: counted from the log start (3 + 2 records delivered).
    never = consumer_lag(kafka, [f"{group_prefix}never"], also=lambda topic: topic == unique_topic)
    assert [(r.committed, r.lag) for r in never] == [(None, 12)]
    assert unread(kafka, never) == 5


def test_an_open_transaction_is_not_readable_until_it_commits(
    kafka: Settings, unique_topic: str, group_prefix: str
) -> None:
    create_topics(kafka, specs=[TopicSpec(unique_topic, "test", "none", {}, partitions=1)])
    writer = producer(kafka, **{"transactional.id": f"test-{uuid.uuid4().hex[:8]}"})
    writer.init_transactions(30)
    writer.begin_transaction()
    for _ in range(3):
        writer.produce(unique_topic, b"open", key=b"k", partition=0)
    writer.flush(30)

    def rows() -> list:  # type: ignore[type-arg]
        return consumer_lag(kafka, [f"{group_prefix}open"], also=lambda t: t == unique_topic)

    assert [r.lag for r in rows()] == [3] and unread(kafka, rows()) == 0
    writer.commit_transaction(30)
    assert unread(kafka, rows()) == 3
