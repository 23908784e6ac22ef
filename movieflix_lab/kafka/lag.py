"""Consumer lag: how far each consumer group is behind, per topic and partition.

Lag is the log-end offset minus the group's committed offset: the records written that the
group has not yet processed (and committed). A partition the group has never committed
counts from the log start.

:func:`watch_lag` samples lag over a window and gives each group and partition Burrow's status
(:mod:`movieflix_lab.kafka.lag_status`), from the commits the group logs meanwhile
(:mod:`movieflix_lab.kafka.commits`).

Committed offsets are read with ``Consumer.committed`` (an OffsetFetch for the group, without
joining it): ``AdminClient.list_consumer_group_offsets`` crashed the process (a segfault in
native code) with confluent-kafka 2.12 against Kafka 4.3.1 on this kit's machines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from movieflix_lab.config import Settings
from movieflix_lab.kafka.client import admin_client, consumer
from movieflix_lab.kafka.exceptions import TopicError
from movieflix_lab.kafka.lag_status import (
    INTERVALS,
    Commit,
    Status,
    group_status,
    partition_status,
    record_commit,
    worst,
)

__all__ = [
    "GroupHealth",
    "LagWatch",
    "PartitionHealth",
    "PartitionLag",
    "committed_offsets",
    "consumer_lag",
    "sample_count",
    "unread",
    "watch_lag",
]

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


_LEADER_MOVING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS}  # fmt: skip


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
        # librdkafka does not mark a partition's leader error in an admin result retriable.
        retriable = error.retriable() or error.code() in _LEADER_MOVING
        raise TopicError(
            f"could not read consumer offsets: {error.str()}", retriable=retriable
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


# --- lag over a window, with Burrow's statuses -------------------------------------------

#: Called after each sample: (samples taken, samples in all).
SampleProgress = Callable[[int, int], None]

#: Burrow's ``expire-group``: commits older than this are not part of a window.
_EXPIRE_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class PartitionHealth:
    """A group's partition after a watch: the last sample, the trend, Burrow's status."""

    group: str
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int
    status: Status
    #: The lag at each sample, oldest first.
    lags: tuple[int, ...]
    #: The commits in the partition's window (those before the watch too).
    commits: int


@dataclass(frozen=True)
class GroupHealth:
    group: str
    #: Burrow's group status: OK, WARN or ERR.
    status: Status
    #: The worst partition status (STOP, STALL or REWIND behind an ERR).
    worst: Status
    lag: int
    partitions: tuple[PartitionHealth, ...]

    def describe(self) -> str:
        """``movieflix-analytics ERR (STOP on 2 of 6 partitions)``."""
        if self.status is Status.OK:
            return f"{self.group} OK"
        bad = sum(p.status is self.worst for p in self.partitions)
        detail = "" if self.worst is self.status else f"{self.worst.value} on "
        of = f"{bad} of {len(self.partitions)} partitions"
        return f"{self.group} {self.status.value} ({detail}{of})"


@dataclass(frozen=True)
class LagWatch:
    """What :func:`watch_lag` saw."""

    window_s: float
    interval_s: float
    #: When each sample was taken (Unix seconds).
    sampled_at: tuple[float, ...]
    groups: tuple[GroupHealth, ...] = field(default=())

    @property
    def partitions(self) -> list[PartitionHealth]:
        return [p for g in self.groups for p in g.partitions]

    def not_ok(self) -> list[GroupHealth]:
        return [g for g in self.groups if g.status is not Status.OK]


def _sample(
    settings: Settings, groups: list[str], also: Callable[[str], bool] | None, retry_for: float
) -> list[PartitionLag]:
    """:func:`consumer_lag`, again for up to ``retry_for`` s while Kafka says it may succeed
    (a leader moving): one such moment must not end a watch."""
    deadline = time.monotonic() + retry_for
    while True:
        try:
            return consumer_lag(settings, groups, also=also)
        except TopicError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def sample_count(window: float, interval: float) -> int:
    """The samples a watch takes: one at the start, one every ``interval`` s in ``window``
    (two at least: a trend needs them).

    >>> sample_count(30, 5), sample_count(0, 5), sample_count(1, 0.3)
    (7, 2, 4)
    """
    return max(2, math.floor(window / interval + 1e-9) + 1)


def watch_lag(
    settings: Settings,
    groups: list[str] | None = None,
    *,
    window: float = 30.0,
    interval: float = 5.0,
    also: Callable[[str], bool] | None = None,
    progress: SampleProgress | None = None,
    allowed_lag: int = 0,
    intervals: int = INTERVALS,
) -> LagWatch:
    """Sample :func:`consumer_lag` every ``interval`` s for ``window`` s; judge each partition.

    While it samples it follows the groups' commits in ``__consumer_offsets``; a partition's
    window is its latest ``intervals`` commits (those before the watch carry no lag: the log
    end then is not known), the lag of each later one taken against the log-end offset of
    the sample before it, as Burrow's storage does. Statuses: :mod:`~.lag_status`.
    """
    from movieflix_lab.kafka.commits import OffsetCommit, OffsetCommitLog

    samples = sample_count(window, interval)
    started = time.time()
    started_ms = int(started * 1000)
    rows = consumer_lag(settings, groups, also=also)
    sampled_at = [started]
    watched = sorted(groups if groups is not None else {r.group for r in rows})
    if progress is not None:
        progress(1, samples)
    if not watched:
        return LagWatch(window, interval, tuple(sampled_at))
    windows: dict[tuple[str, str, int], list[Commit]] = {}
    log_ends: dict[tuple[str, int], list[int]] = {}
    lags: dict[tuple[str, str, int], list[int]] = {}

    def take(sample: list[PartitionLag]) -> None:
        taken = set()
        for row in sample:
            if (row.topic, row.partition) not in taken:  # once per sample, not per group
                taken.add((row.topic, row.partition))
                ends = log_ends.setdefault((row.topic, row.partition), [])
                ends.append(row.end)
                del ends[:-intervals]
            lags.setdefault((row.group, row.topic, row.partition), []).append(row.lag)

    def add(commits: list[OffsetCommit]) -> None:
        for c in commits:
            key = (c.group, c.topic, c.partition)
            if c.offset is None:
                windows.pop(key, None)
            elif c.timestamp_ms >= started_ms - _EXPIRE_MS:
                ends = log_ends.get((c.topic, c.partition))
                # The lag at a commit made before the watch is not known.
                broker = ends[-1] if ends and c.timestamp_ms >= started_ms else None
                windows[key] = record_commit(
                    windows.get(key, []), c.offset, c.timestamp_ms, broker, intervals=intervals
                )

    take(rows)
    with OffsetCommitLog(settings, watched) as log:
        add(log.history())
        for n in range(2, samples + 1):
            add(log.follow(max(0.0, started + (n - 1) * interval - time.time())))
            rows = _sample(settings, watched, also, retry_for=interval)
            sampled_at.append(time.time())
            take(rows)
            if progress is not None:
                progress(n, samples)
        add(log.follow(0))
    now_ms = int(time.time() * 1000)
    by_group: dict[str, list[PartitionHealth]] = {}
    for row in rows:
        key = (row.group, row.topic, row.partition)
        commits = windows.get(key, [])
        ends = log_ends.get((row.topic, row.partition), [row.end])
        current = max(0, ends[-1] - commits[-1].offset) if commits else row.lag
        status = partition_status(
            commits, broker_offsets=ends, current_lag=current, now_ms=now_ms,
            allowed_lag=allowed_lag,
        )  # fmt: skip
        by_group.setdefault(row.group, []).append(
            PartitionHealth(row.group, row.topic, row.partition, row.committed, row.end,
                            row.lag, status, tuple(lags.get(key, [])), len(commits))
        )  # fmt: skip
    health = tuple(
        GroupHealth(
            group,
            group_status(p.status for p in parts),
            worst(p.status for p in parts),
            sum(p.lag for p in parts),
            tuple(parts),
        )
        for group, parts in sorted(by_group.items())
    )
    return LagWatch(window, interval, tuple(sampled_at), health)
