"""Reading a topic once, as it is now: every partition from a first offset to an end offset
fixed when the read begins (a bounded snapshot, with the offsets for provenance).

By default everything from the log start to the end offsets as of the call; ``ranges``
(partition → [first, end)) or ``start_ms``/``end_ms`` (record timestamps) narrow it.

Record timestamps are event times here, and they are not monotonic within a partition (late
events, backfills, several producers). Kafka's time index answers "the first offset whose
timestamp is ≥ t", which is a correct *first* offset for ``start_ms`` (nothing before it is
in range) but not an end: a single early record stamped after ``end_ms`` would cut off every
later record that is in range. So a time range reads from that first offset to the end
offset as of the call and keeps the records whose timestamps fall in [start_ms, end_ms).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.events.codec import loads
from movieflix_lab.kafka.client import consumer, watermarks

__all__ = ["TopicSnapshot", "read_topic", "resolve_ranges"]


@dataclass
class TopicSnapshot:
    topic: str
    #: partition → [first offset, end offset) read.
    offsets: dict[int, list[int]] = field(default_factory=dict)
    records: int = 0
    unreadable: int = 0
    #: Records in the offset ranges whose timestamps fell outside [start_ms, end_ms).
    outside: int = 0
    #: Stopped at ``max_records`` with records left in the ranges.
    truncated: bool = False


def _offset_at(reader: Consumer, topic: str, partition: int, ms: int, high: int) -> int:
    found = reader.offsets_for_times([TopicPartition(topic, partition, ms)], 10)[0]
    return high if found.offset < 0 else found.offset


def resolve_ranges(
    reader: Consumer, topic: str, start_ms: int | None = None, end_ms: int | None = None
) -> dict[int, list[int]]:
    """Each partition's [first, end) offsets to read: the whole log, or, for a time range, from
    the first record stamped ≥ ``start_ms`` to the end offset as of now (``end_ms`` cannot
    bound offsets: timestamps are not monotonic, see the module docstring)."""
    metadata = reader.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or not metadata.partitions:
        raise KafkaException(f"topic {topic} does not exist: run `movieflix-lab topics create`")
    ranges = {}
    for p in sorted(metadata.partitions):
        low, high = watermarks(reader, topic, p)
        first = low if start_ms is None else max(low, _offset_at(reader, topic, p, start_ms, high))
        if end_ms is not None and start_ms is not None and end_ms <= start_ms:
            first = high
        ranges[p] = [first, max(first, high)]
    return ranges


def read_topic(
    settings: Settings,
    topic: str,
    on_batch: Callable[[list[dict[str, Any]]], None],
    *,
    ranges: dict[int, list[int]] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    max_records: int | None = None,
    metadata: bool = False,
    batch_size: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 600.0,
) -> TopicSnapshot:
    """Decode the JSON records of ``topic`` in the ranges; ``on_batch`` gets them in batches
    (with ``_partition``, ``_offset`` and ``_timestamp`` when ``metadata``). Records that are
    not JSON objects are counted, not passed on; with ``start_ms``/``end_ms`` only records
    stamped in [start_ms, end_ms) are passed on (also within given ``ranges``, so a re-run
    pinned to the same ranges and times reads the same records)."""
    reader = consumer(settings)
    try:
        if ranges is None:
            ranges = resolve_ranges(reader, topic, start_ms, end_ms)
        snapshot = TopicSnapshot(topic, {p: list(r) for p, r in ranges.items()})
        total = sum(b - a for a, b in ranges.values())
        if max_records is not None:
            total = min(total, max_records)
        remaining = {p for p, (a, b) in ranges.items() if b > a}
        reader.assign([TopicPartition(topic, p, ranges[p][0]) for p in sorted(remaining)])
        batch: list[dict[str, Any]] = []
        read = 0
        deadline = time.monotonic() + timeout_s
        while remaining:
            if max_records is not None and snapshot.records >= max_records:
                snapshot.truncated = True
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: {len(remaining)} partitions unfinished")
            messages = reader.consume(5000, timeout=1.0)
            if not messages:  # a compacted or transactional tail: ask where the reader is
                for tp in reader.position([TopicPartition(topic, p) for p in remaining]):
                    if tp.offset >= ranges[tp.partition][1]:
                        remaining.discard(tp.partition)
            for message in messages:
                if message.error():
                    continue
                p, offset = message.partition(), message.offset()
                read += 1
                if offset >= ranges[p][1] - 1:
                    remaining.discard(p)
                if offset >= ranges[p][1]:
                    continue
                stamp = message.timestamp()[1]
                if (start_ms is not None and stamp < start_ms) or (
                    end_ms is not None and stamp >= end_ms
                ):
                    snapshot.outside += 1
                    continue
                if max_records is not None and snapshot.records >= max_records:
                    snapshot.truncated = True
                    continue
                try:
                    value = loads(message.value())
                except (TypeError, ValueError):
                    value = None
                if not isinstance(value, dict):
                    snapshot.unreadable += 1
                    continue
                if metadata:
                    value["_partition"], value["_offset"] = p, offset
                    value["_timestamp"] = stamp
                batch.append(value)
                snapshot.records += 1
                if len(batch) >= batch_size:
                    on_batch(batch)
                    batch = []
            if progress:
                progress(min(read, total), total)
        if batch:
            on_batch(batch)
        return snapshot
    finally:
        reader.close()
