"""Offset commits as the group coordinator logs them: ``__consumer_offsets``, with timestamps.

A consumer group's committed offset (an OffsetFetch) says where the group is, not when it
committed; Burrow's STOP and STALL rules need the when. The coordinator writes every commit
to ``__consumer_offsets`` with its ``commitTimestamp``, in the partition
``abs(group.hashCode()) % partitions`` (Kafka's ``GroupCoordinatorService.partitionFor``).
This reads those records for a few groups, as Burrow's Kafka consumer module does.

The record formats are Kafka 4.3's ``OffsetCommitKey`` (key versions 0 and 1; 2 and up are
group metadata) and ``OffsetCommitValue`` versions 0-4 (``common/message/*.json`` in the
``kafka-group-coordinator`` jar); a null value deletes the offset.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.kafka.client import consumer

__all__ = ["OffsetCommit", "OffsetCommitLog", "decode_commit", "offsets_partition"]

OFFSETS_TOPIC = "__consumer_offsets"


@dataclass(frozen=True)
class OffsetCommit:
    group: str
    topic: str
    partition: int
    #: None: the offset was deleted (a tombstone).
    offset: int | None
    timestamp_ms: int


#: How long :meth:`OffsetCommitLog.history` waits for a first record.
FIRST_WAIT_S = 10.0


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (UTF-16 code units, 32-bit overflow).

    >>> java_string_hash("movieflix-analytics"), java_string_hash("")
    (271784798, 0)
    """
    h = 0
    units = text.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def offsets_partition(group: str, partitions: int) -> int:
    """The ``__consumer_offsets`` partition that holds ``group``'s commits.

    >>> offsets_partition("movieflix-analytics", 50)
    48
    """
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions  # Kafka's Utils.abs


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str:
        size = self.take(">h")
        text = self.data[self.at : self.at + max(size, 0)].decode()
        self.at += max(size, 0)
        return text

    def compact_string(self) -> str:
        size, shift = 0, 0
        while True:  # an unsigned varint: the length plus one
            byte = self.data[self.at]
            self.at += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        text = self.data[self.at : self.at + max(size - 1, 0)].decode()
        self.at += max(size - 1, 0)
        return text


def decode_commit(
    key: bytes | None, value: bytes | None, log_timestamp_ms: int
) -> OffsetCommit | None:
    """The offset commit in a ``__consumer_offsets`` record; None for group metadata.

    >>> key = b"\\x00\\x01" + b"\\x00\\x01g" + b"\\x00\\x01t" + (3).to_bytes(4, "big")
    >>> value = (b"\\x00\\x03" + (42).to_bytes(8, "big") + (0).to_bytes(4, "big") + b"\\x00\\x00"
    ...          + (1_700_000_000_000).to_bytes(8, "big"))
    >>> decode_commit(key, value, 0)
    OffsetCommit(group='g', topic='t', partition=3, offset=42, timestamp_ms=1700000000000)
    >>> decode_commit(key, None, 5).offset is None
    True
    """
    if not key or len(key) < 2:
        return None
    k = _Reader(key)
    if k.take(">h") not in (0, 1):
        return None
    group, topic, partition = k.string(), k.string(), k.take(">i")
    if value is None:
        return OffsetCommit(group, topic, partition, None, log_timestamp_ms)
    v = _Reader(value)
    version = v.take(">h")
    offset = v.take(">q")
    if version >= 3:
        v.take(">i")  # the leader epoch
    if version >= 4:
        v.compact_string()
    else:
        v.string()
    timestamp = v.take(">q")
    return OffsetCommit(group, topic, partition, offset, timestamp)


class OffsetCommitLog:
    """The commits of ``groups`` from ``__consumer_offsets``: what is there (:meth:`history`),
    then what follows (:meth:`follow`). Reads committed records only (a transaction's offsets
    count once it commits). Close it (or use it as a context manager)."""

    def __init__(self, settings: Settings, groups: list[str], *, timeout: float = 30.0) -> None:
        self.groups = set(groups)
        self.timeout = timeout
        self.reader = consumer(settings, **{"isolation.level": "read_committed"})
        try:
            metadata = self.reader.list_topics(OFFSETS_TOPIC, timeout=timeout).topics
            count = len(metadata[OFFSETS_TOPIC].partitions) if OFFSETS_TOPIC in metadata else 0
            self.partitions = sorted({offsets_partition(g, count) for g in groups}) if count else []
            self.reader.assign(
                [TopicPartition(OFFSETS_TOPIC, p, OFFSET_BEGINNING) for p in self.partitions]
            )
        except BaseException:
            self.reader.close()
            raise

    def __enter__(self) -> OffsetCommitLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()

    def _decoded(self, timeout: float) -> Iterator[tuple[int, int, OffsetCommit | None]]:
        for message in self.reader.consume(num_messages=1000, timeout=timeout):
            if message.error() is not None:
                continue  # end of a partition, or a transient fetch error the next poll retries
            commit = decode_commit(message.key(), message.value(), message.timestamp()[1])
            yield message.partition(), message.offset(), commit

    def history(self) -> list[OffsetCommit]:
        """Every commit of the groups the log holds now (up to its end as it was on the call;
        a second without records after the first ends it too, as do ten seconds before it: a
        transaction still open is not readable). A fresh reader's first fetch can take over a
        second on a busy machine, so the first wait is the longer one."""
        ends = {}
        for p in self.partitions:
            low, high = self.reader.get_watermark_offsets(
                TopicPartition(OFFSETS_TOPIC, p), timeout=self.timeout
            )
            if high > low:
                ends[p] = high
        found: list[OffsetCommit] = []
        deadline = time.monotonic() + self.timeout
        idle_since, patience = time.monotonic(), FIRST_WAIT_S
        while ends and time.monotonic() < deadline and time.monotonic() - idle_since < patience:
            for _, _, commit in self._decoded(0.2):
                idle_since, patience = time.monotonic(), 1.0
                if commit is not None and commit.group in self.groups:
                    found.append(commit)
            positions = self.reader.position([TopicPartition(OFFSETS_TOPIC, p) for p in ends])
            for tp in positions:
                if tp.offset >= ends[tp.partition]:
                    ends.pop(tp.partition)
        return found

    def follow(self, seconds: float) -> list[OffsetCommit]:
        """The groups' commits logged over the next ``seconds`` (at least one poll)."""
        found: list[OffsetCommit] = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            for _, _, commit in self._decoded(max(0.0, min(left, 0.5))):
                if commit is not None and commit.group in self.groups:
                    found.append(commit)
            if left <= 0:
                return found
