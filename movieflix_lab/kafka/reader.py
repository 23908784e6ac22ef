"""Reading a whole topic once, as it is now: every partition from its first offset to the
end offset seen when the read began (a bounded snapshot, with the offsets for provenance)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.kafka.client import consumer, watermarks

__all__ = ["TopicSnapshot", "read_topic"]


@dataclass
class TopicSnapshot:
    topic: str
    #: partition → [first offset, end offset] read.
    offsets: dict[int, list[int]] = field(default_factory=dict)
    records: int = 0
    unreadable: int = 0


def read_topic(
    settings: Settings,
    topic: str,
    on_batch: Callable[[list[dict[str, Any]]], None],
    *,
    batch_size: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 600.0,
) -> TopicSnapshot:
    """Decode every JSON record of ``topic`` up to its current end; ``on_batch`` gets them
    in batches. Records that are not JSON objects are counted, not passed on."""
    import time

    reader = consumer(settings)
    try:
        metadata = reader.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or not metadata.partitions:
            raise KafkaException(f"topic {topic} does not exist: run `movieflix-lab topics create`")
        snapshot = TopicSnapshot(topic)
        assignment = []
        for p in sorted(metadata.partitions):
            low, high = watermarks(reader, topic, p)
            snapshot.offsets[p] = [low, high]
            if high > low:
                assignment.append(TopicPartition(topic, p, low))
        total = sum(high - low for low, high in snapshot.offsets.values())
        remaining = {tp.partition for tp in assignment}
        reader.assign(assignment)
        batch: list[dict[str, Any]] = []
        read = 0
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: {len(remaining)} partitions unfinished")
            messages = reader.consume(5000, timeout=1.0)
            if not messages:  # a compacted or transactional tail: ask where the reader is
                for tp in reader.position([TopicPartition(topic, p) for p in remaining]):
                    if tp.offset >= snapshot.offsets[tp.partition][1]:
                        remaining.discard(tp.partition)
            for message in messages:
                if message.error():
                    continue
                p, offset = message.partition(), message.offset()
                read += 1
                if offset >= snapshot.offsets[p][1] - 1:
                    remaining.discard(p)
                if offset >= snapshot.offsets[p][1]:
                    continue
                try:
                    value = json.loads(message.value())
                except (TypeError, ValueError):
                    value = None
                if not isinstance(value, dict):
                    snapshot.unreadable += 1
                    continue
                batch.append(value)
                snapshot.records += 1
                if len(batch) >= batch_size:
                    on_batch(batch)
                    batch = []
            if progress:
                progress(read, total)
        if batch:
            on_batch(batch)
        return snapshot
    finally:
        reader.close()
