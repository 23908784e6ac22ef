"""Consumer lag: how far each consumer group is behind, per topic and partition.

Lag is the log-end offset minus the group's committed offset: the records written that the
group has not yet processed (and committed). A partition the group has never committed
counts from the log start.

Committed offsets are read with ``Consumer.committed`` (an OffsetFetch for the group, without
joining it): ``AdminClient.list_consumer_group_offsets`` crashed the process (a segfault in
native code) with confluent-kafka 2.12 against Kafka 4.3.1 on this kit's machines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from movieflix_lab.config import Settings
from movieflix_lab.kafka.client import admin_client, consumer
from movieflix_lab.kafka.exceptions import TopicError

__all__ = ["PartitionLag", "committed_offsets", "consumer_lag", "unread"]

#: The groups the kit's own apps use.
GROUP_PREFIX = "movieflix-"


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


_RETRIABLE = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
              KafkaError.COORDINATOR_NOT_AVAILABLE}  # fmt: skip


def committed_offsets(
    reader: Consumer, partitions: list[TopicPartition], timeout: float = 30.0
) -> list[TopicPartition]:
    """``reader``'s group's committed offsets of ``partitions`` (an OffsetFetch, without
    joining the group); retries while the group's coordinator is moving or loading."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return list(reader.committed(partitions, timeout=timeout))
        except KafkaException as exc:
            if exc.args[0].code() not in _RETRIABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _committed(
    settings: Settings, group: str, partitions: list[TopicPartition], timeout: float
) -> list[TopicPartition]:
    reader = consumer(settings, group_id=group, **{"enable.auto.commit": False})
    try:
        return committed_offsets(reader, partitions, timeout)
    finally:
        reader.close()


def consumer_lag(
    settings: Settings,
    groups: list[str] | None = None,
    *,
    also: Callable[[str], bool] | None = None,
    timeout: float = 30.0,
) -> list[PartitionLag]:
    """Lag per group, topic and partition; by default of every ``movieflix-*`` group.

    A group's topics are those it has committed offsets on, plus those ``also`` accepts (a
    group that has not committed yet on a topic it reads lags by all the topic holds).
    """
    admin = admin_client(settings)
    try:
        if groups is None:
            listed = admin.list_consumer_groups(request_timeout=timeout).result()
            groups = sorted(g.group_id for g in listed.valid if g.group_id.startswith(GROUP_PREFIX))
        metadata = admin.list_topics(timeout=timeout)
        every = [
            TopicPartition(name, p)
            for name, topic in metadata.topics.items()
            if not name.startswith("__")
            for p in topic.partitions
        ]
        committed: dict[tuple[str, str, int], int | None] = {}
        for group in groups:
            offsets = _committed(settings, group, every, timeout) if every else []
            # The group's topics are those it has committed on; every partition of them
            # counts (one never committed lags by all it holds).
            read = {tp.topic for tp in offsets if tp.offset >= 0}
            for tp in offsets:
                if tp.topic in read or (also is not None and also(tp.topic)):
                    committed[(group, tp.topic, tp.partition)] = (
                        tp.offset if tp.offset >= 0 else None
                    )
        partitions = sorted({(topic, partition) for _, topic, partition in committed})
        if not partitions:
            return []
        latest = admin.list_offsets(
            {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions},
            request_timeout=timeout,
        )
        earliest = admin.list_offsets(
            {TopicPartition(t, p): OffsetSpec.earliest() for t, p in partitions},
            request_timeout=timeout,
        )
        end = {(tp.topic, tp.partition): f.result().offset for tp, f in latest.items()}
        start = {(tp.topic, tp.partition): f.result().offset for tp, f in earliest.items()}
    except KafkaException as exc:
        error = exc.args[0]
        raise TopicError(
            f"could not read consumer offsets: {error.str()}", retriable=error.retriable()
        ) from None
    rows = []
    for (group, topic, partition), offset in sorted(committed.items()):
        log_end = end[(topic, partition)]
        position = offset if offset is not None else start[(topic, partition)]
        rows.append(
            PartitionLag(group, topic, partition, offset, log_end, max(0, log_end - position))
        )
    return rows


def unread(settings: Settings, rows: list[PartitionLag], *, timeout: float = 5.0) -> int:
    """The records a read-committed consumer would still get from each row's committed offset.

    A partition's lag counts offsets, and under transactions not every offset is a record:
    commit and abort markers take one each and are never delivered, and neither are the
    records of an aborted transaction. So a caught-up group can show lag that no one will
    ever read. This reads the rows' partitions from the committed offsets and counts what
    arrives, up to each partition's last stable offset: the records of a transaction still
    open are not readable yet and not counted (its producer is alive and will commit or
    abort it). A partition not read to its end by ``timeout`` adds what its lag says is
    beyond the consumer's position. Meant for small lags: it reads every record it counts.
    """
    rows = [row for row in rows if row.lag > 0]
    if not rows:
        return 0
    options: dict[str, Any] = {"isolation.level": "read_committed", "enable.partition.eof": True}
    reader = consumer(settings, **options)
    try:
        reader.assign([
            TopicPartition(row.topic, row.partition,
                           row.committed if row.committed is not None else OFFSET_BEGINNING)
            for row in rows
        ])  # fmt: skip
        pending = {(row.topic, row.partition): row for row in rows}
        count = 0
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            message = reader.poll(0.1)
            if message is None:
                continue
            error = message.error()
            if error is None:
                count += 1
            elif error.code() == KafkaError._PARTITION_EOF:
                pending.pop((message.topic(), message.partition()), None)
        if pending:
            positions = reader.position([TopicPartition(t, p) for t, p in pending])
            for tp in positions:
                row = pending[(tp.topic, tp.partition)]
                at = tp.offset if tp.offset >= 0 else (row.end - row.lag)
                count += max(0, row.end - at)
        return count
    finally:
        reader.close()
