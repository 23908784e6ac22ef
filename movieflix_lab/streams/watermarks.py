"""Event-time watermarks across a re-key: windows that do not depend on how a backlog is read.

After ``group_by`` the records of every source partition meet in one re-keyed partition in
the order one consumer happened to read them. A catch-up fetches each source partition's
backlog in large chunks, so the re-keyed stream jumps back and forth in event time by up to
the backlog's span, and a window that closes on "the latest event time seen" closes too
early: a 4-hour backlog read with a 5-minute grace closed 68 genre windows, none exact.

The rule here is Flink's: an operator's watermark is the *minimum* over its input
partitions of each partition's progress in event time, and a record is late only if it is
late in *its own source partition's order*. Three parts:

- **Before the re-key**, :class:`SourceClock` keeps each source partition's progress (the
  largest event time read from it, in the partition's own state, so a restart or a new owner
  continues it) and stamps every record with the progress *before* it (header
  ``movieflix-wm``: ``topic/partition/progress/partitions``). Whenever a partition's
  progress crosses a pane boundary it also writes a small *watermark marker* to every
  re-keyed partition, through the app's own producer (so a marker is part of the checkpoint,
  transactional under exactly-once, and ordered with the partition's records).
- **Quiet partitions**: a partition with nothing left to read (asked of the broker) and no
  record for ``idle_timeout_s`` (wall clock) moves on with the wall clock from its last
  event time, announced once a pane of wall time: live, its next record will be about that
  late, so it holds the others back by about a pane; replayed or compressed traffic, whose
  event time runs far faster than the wall clock, still waits for it. Excluding quiet
  partitions outright (Flink's idleness) let a simulated hour read in seconds close windows
  a quiet partition still had records for. A partition whose last event time this instance
  does not know (it has read nothing from it since it started) is announced at its largest
  timestamp (from the broker); an empty one holds nothing back until its first record.
- **After the re-key**, :class:`WatermarkClock` (used by the windows) keeps, per re-keyed
  partition, each source partition's closable boundary, and the watermark: their minimum.
  Windows close when the watermark passes their end plus the grace period. A partition never
  heard of holds the watermark back.
- **Lateness** is judged with the stamp: a record is late for a window that ended at or
  before its own partition's progress minus the grace period. Such a record is late however
  the partitions were interleaved; any other record's windows are still open (the watermark
  is at most its partition's progress), so it is counted. Results therefore depend only on
  each partition's own order: the same input gives the same windows whatever the fetch
  sizes, speed, restarts or number of instances. The exceptions are the live cases the
  quiet rule exists for: a record older than its quiet partition's wall-clock progress
  minus the grace is late (the partition's stamps include the announced progress), and a
  record that lands in a window closed meanwhile — the first records of a partition that
  was empty, or one across a restart after a wall-clock announcement — is counted late
  with reason ``quiet``.

Why this design, against the leads weighed:

- Quix's buffered timestamp-ordered consumption (``InternalConsumerBuffer``, used by
  ``concat`` and joins) orders what one consumer reads, but not what several instances write
  into a re-keyed partition, and it costs a buffer per partition on every record.
- Two-phase aggregation (per-source-partition partial panes, then a merge) removes the
  per-record repartition, but the merge still needs every source partition's progress to
  know when a window is complete: the same watermark, plus a partial per source partition,
  key and window, which on a sparse backlog outnumbers the records themselves.
- Stamping plus markers keeps the re-key as it is and adds one small state write per record
  before it (the partition's progress) and one read after it; markers cost one message per
  source partition, re-keyed partition and pane of event time.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from confluent_kafka import TopicPartition
from quixstreams import Application, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.state import State

__all__ = [
    "MARKER_KEY",
    "WM_HEADER",
    "Advance",
    "SourceClock",
    "WatermarkClock",
    "encode_stamp",
    "marker",
    "partition_state",
]

#: The header of a stamped record: its partition's progress before it, the partition and the
#: partition count (``>qhh``, 12 bytes).
WM_HEADER = "movieflix-wm"
#: A watermark marker's key and value field (a marker is ``{MARKER_FIELD: {...}}``).
MARKER_KEY = "~watermark"
MARKER_FIELD = "movieflix-watermark"
#: Progress of a partition nothing was read from yet.
NEVER = -(2**62)
#: A marker's progress for a partition with an empty log: it holds nothing back.
EMPTY = 2**62
#: The prefix of partition-wide state entries (message keys are JSON: they start otherwise).
PARTITION_PREFIX = b"\x00partition"
_PROGRESS = struct.Struct(">q")
_STAMP = struct.Struct(">qhh")
#: A ``set_headers`` function: (value, key, timestamp, headers) → headers.
HeaderStep = Callable[[Any, Any, int, Any], Any]
#: The source partition's progress, in its partition-wide state (stored once a pane).
PROGRESS = "wm:progress"
#: After the re-key: a source partition's boundary (``wm:src:<partition>``), and the
#: boundary windows are closed up to.
SOURCE, CLOSED = "wm:src:", "wm:closed"


def partition_state(state: State) -> State:
    """The partition-wide state beside a key's ``state`` (same store, changelog, checkpoint).

    Quix hands a stateful function the state of the record's key only; a watermark is
    partition-wide. The entries live in the same transaction under a prefix no message key
    can have.
    """
    return state._transaction.as_state(  # type: ignore[attr-defined]
        prefix=PARTITION_PREFIX,
        timestamp=state._timestamp,  # type: ignore[attr-defined]
    )


def floor_to(ms: int, step: int) -> int:
    """``ms`` rounded down to a multiple of ``step`` (NEVER stays NEVER).

    >>> floor_to(7, 5), floor_to(-3, 5), floor_to(NEVER, 5) == NEVER
    (5, -5, True)
    """
    return NEVER if ms <= NEVER else ms - ms % step


def encode_stamp(progress_before: int, partition: int, partitions: int) -> bytes:
    """A record's ``movieflix-wm`` header value."""
    return _STAMP.pack(progress_before, partition, partitions)


def marker(partition: int, progress: int, partitions: int) -> dict[str, Any]:
    """A watermark marker: source ``partition`` (of ``partitions``) has reached ``progress``."""
    return {MARKER_FIELD: {"partition": partition, "progress": progress, "partitions": partitions}}


def _stamp(headers: Any) -> tuple[int, int, int] | None:
    """``(partition, progress_before, partitions)`` from a stamped record's headers.

    >>> _stamp([("movieflix-wm", encode_stamp(1200, 3, 6))])
    (3, 1200, 6)
    >>> _stamp(None) is None
    True
    """
    for name, raw in headers or ():
        if name == WM_HEADER:
            before, partition, partitions = _STAMP.unpack(raw)
            return partition, before, partitions
    return None


@dataclass
class SourceClock:
    """Before a re-key: each source partition's progress, stamps, markers, quiet partitions.

    ``tick_ms`` and ``offset_ms`` place the pane boundaries (the downstream pane and grace):
    a marker goes out when ``progress - offset_ms`` enters a new pane, so the downstream
    boundary it implies is exact.
    """

    tick_ms: int
    offset_ms: int = 0
    idle_timeout_s: float = 5.0
    #: Set by :meth:`attach`: the re-keyed topic and its partition count (None: no re-key).
    targets: tuple[str, int] | None = None
    _app: Application | None = None
    _source_topic: str | None = None
    _before: int = NEVER
    _partitions: int = 0
    #: Per partition: wall time of its last record (or of the first look at it).
    _seen: dict[int, float] = field(default_factory=dict)
    #: Per partition: the progress last known here (its records, or a quiet announcement).
    _progress: dict[int, int] = field(default_factory=dict)
    _checked: float = 0.0
    #: Per partition: the transaction its stored progress was last read in.
    _read: dict[int, Any] = field(default_factory=dict)
    #: Partition → its store transaction in the current checkpoint (set by :meth:`apply_to`).
    transactions: Callable[[int], Any] | None = None
    markers: int = 0

    def apply_to(self, sdf: StreamingDataFrame, *, also: HeaderStep | None = None
                 ) -> StreamingDataFrame:  # fmt: skip
        """``sdf`` with every record stamped, in one header step (``also``: another header
        step run in the same one; each step costs a pass through Quix's stream per record).
        The progress lives in ``sdf``'s default store, touched once per checkpoint and
        partition and once per pane, not through a stateful step per record."""
        sdf.register_store()
        stream_id, context = sdf.stream_id, sdf.processing_context

        def transaction(partition: int) -> Any:
            return context.checkpoint.get_store_transaction(stream_id, partition)

        self.transactions = transaction
        if also is None:
            return sdf.set_headers(self)

        def both(value: Any, key: Any, timestamp: int, headers: Any) -> Any:
            return self(value, key, timestamp, also(value, key, timestamp, headers))

        return sdf.set_headers(both)

    def __call__(self, value: Any, key: Any, timestamp: int, headers: Any) -> Any:
        """The record's headers with its stamp (the partition's progress before it)."""
        partition = message_context().partition
        assert self.transactions is not None, "SourceClock.apply_to wires it to the app"
        transaction = self.transactions(partition)
        if self._read.get(partition) is not transaction:  # once per checkpoint: the stored one
            raw = transaction.as_state(prefix=PARTITION_PREFIX).get_bytes(PROGRESS)
            stored = _PROGRESS.unpack(raw)[0] if raw is not None else NEVER
            self._progress[partition] = max(stored, self._progress.get(partition, NEVER))
            self._read[partition] = transaction
        before = self._before = self._progress[partition]
        progress = timestamp if timestamp > before else before
        self._seen[partition] = time.monotonic()
        self._progress[partition] = progress
        if self._pane(progress) != self._pane(before):
            # Stored once a pane: a restart reads the pane's first progress, and every
            # decision (window ends are pane multiples) is the same as with the exact one.
            shared = transaction.as_state(prefix=PARTITION_PREFIX, timestamp=timestamp)
            shared.set_bytes(PROGRESS, _PROGRESS.pack(progress))
            self._send(partition, progress)
        stamp = (WM_HEADER, encode_stamp(before, partition, self._partitions))
        if not headers:
            return [stamp]
        return [(n, raw) for n, raw in headers if n != WM_HEADER] + [stamp]

    def _pane(self, progress: int) -> int:
        return floor_to(progress - self.offset_ms if progress > NEVER else NEVER, self.tick_ms)

    @property
    def before(self) -> int:
        """The progress of the current record's partition before it (NEVER: none)."""
        return self._before

    def _send(self, partition: int, progress: int) -> None:
        if self.targets is None or self._app is None:
            return  # no re-key: the stamps alone carry the progress
        topic, count = self.targets
        raw = json.dumps(marker(partition, progress, self._partitions)).encode()
        key = json.dumps(MARKER_KEY).encode()
        out = self._app._processing_context.producer
        # Stamped with the event time it announces, not the wall clock: Quix hands an app
        # the records of its topics' same-numbered partitions in timestamp order, so a marker
        # stamped "now" in a re-keyed partition held every record behind it until the other
        # partitions' records caught up with the wall clock (fraud alerts waited seconds).
        # An empty partition's marker announces no time: it takes the slowest progress known.
        now_ms = int(time.time() * 1000)
        announced = min(self._progress.values(), default=now_ms) if progress == EMPTY else progress
        at = min(max(announced, 0), now_ms)
        for target in range(count):
            out.produce(topic=topic, value=raw, key=key, partition=target, timestamp=at)
        self.markers += count

    def tick(self) -> None:
        """Quiet partitions (nothing left to read, no record for the timeout): one whose
        progress this instance knows moves on with the wall clock, announced once a pane of
        wall time; one it does not know is announced at its largest timestamp (from the
        broker), or as empty."""
        now = time.monotonic()
        if self._app is None or now - self._checked < min(1.0, self.idle_timeout_s / 2):
            return
        self._checked = now
        consumer = self._app._consumer
        try:
            assigned = [tp for tp in consumer.assignment() if tp.topic == self._source_topic]
        except Exception:  # not assigned yet, or the broker is away
            return
        for tp in assigned:
            partition = tp.partition
            quiet_for = now - self._seen.setdefault(partition, now)
            known = self._progress.get(partition)
            if quiet_for < self.idle_timeout_s or (
                known is not None and quiet_for * 1000 < self.tick_ms
            ):
                continue
            drained = self._drained(consumer, tp)
            if drained is None:
                continue
            if known is None:
                found = self._last_timestamp(tp) if drained else EMPTY
                if found is None:
                    continue
                if found != EMPTY:
                    self._progress[partition] = found
                moved = found
            else:
                moved = self._progress[partition] = known + int(quiet_for * 1000)
            self._seen[partition] = now
            self._send(partition, moved)

    @staticmethod
    def _drained(consumer: Any, tp: TopicPartition) -> bool | None:
        """None: records left to read (or unknown); True: drained; False: an empty log.
        Asks the broker (a cached high watermark can lag behind the log)."""
        where = TopicPartition(tp.topic, tp.partition)
        try:
            low, high = consumer.get_watermark_offsets(where, timeout=2)
            (position,) = consumer.position([where])
        except Exception:  # unknown: not quiet
            return None
        if high is None or high < 0:
            return None
        if high == low:
            return False
        at = position.offset
        return True if at >= 0 and high - at <= 1 else None  # at most a transaction marker

    def _last_timestamp(self, tp: TopicPartition) -> int | None:
        """The partition's largest record timestamp, from the broker (None: unknown)."""
        from confluent_kafka.admin import OffsetSpec

        assert self._app is not None
        admin = self._app._topic_manager._admin.admin_client
        try:
            where = TopicPartition(tp.topic, tp.partition)
            futures = admin.list_offsets({where: OffsetSpec.max_timestamp()}, request_timeout=5)
            (future,) = futures.values()
            found = future.result(timeout=5)
        except Exception:  # the broker is away: try again at the next tick
            return None
        return int(found.timestamp) if found.offset >= 0 and found.timestamp >= 0 else None

    def attach(self, app: Application, source: StreamingDataFrame,
               grouped: StreamingDataFrame) -> None:  # fmt: skip
        """Wire the clock to the running app and the re-keyed topic ``grouped`` reads."""
        self._app = app
        (source_topic,) = source.topics
        self._source_topic = source_topic.name
        self._partitions = source_topic.broker_config.num_partitions or 1
        (topic,) = grouped.topics
        if topic.name != source_topic.name:  # Quix skips the repartition with one partition
            self.targets = (topic.name, topic.broker_config.num_partitions or 1)
        app._dataframe_registry.register_periodic_task(self.tick)


class Advance(NamedTuple):
    """The watermark of a re-keyed partition moved: windows ending in (before, after] close."""

    before: int
    after: int


class Observation(NamedTuple):
    """What :meth:`WatermarkClock.observe` learnt from one record."""

    marker: bool
    #: Windows ending at or before it are closed for this record (own order, or quiet).
    late_until: int
    #: Why a record is late for a window ending at or before ``late_until``.
    reason: str
    advance: Advance | None


class _View:
    """One re-keyed partition's watermark entries in one transaction (read once each)."""

    __slots__ = ("boundaries", "closed", "shared")

    def __init__(self, shared: State) -> None:
        self.shared = shared
        raw = shared.get_bytes(CLOSED)
        self.closed = _PROGRESS.unpack(raw)[0] if raw is not None else NEVER
        #: Source partition → its closable boundary (absent: not read yet).
        self.boundaries: dict[int, int | None] = {}

    def boundary(self, partition: int) -> int | None:
        if partition not in self.boundaries:
            raw = self.shared.get_bytes(f"{SOURCE}{partition}")
            self.boundaries[partition] = _PROGRESS.unpack(raw)[0] if raw is not None else None
        return self.boundaries[partition]


class WatermarkClock:
    """After a re-key: the watermark of a re-keyed partition, from stamps and markers.

    State (partition-wide, fixed-size bytes): per source partition ``wm:src:<partition>``
    its closable boundary (progress minus ``grace_ms``, rounded down to ``pane_ms``), and
    ``wm:closed``: the boundary windows are closed up to. A source's entry is written when
    its boundary moves (once a pane of event time); the entries are read once per
    checkpoint (a new owner, a recovery or an aborted checkpoint come with a new
    transaction), not per record.
    """

    def __init__(self, *, grace_ms: int, pane_ms: int) -> None:
        self.grace_ms = grace_ms
        self.pane_ms = pane_ms
        self._views: dict[Any, _View] = {}

    def shared(self, state: State) -> State:
        """The partition-wide state beside a key's ``state`` (cached per transaction)."""
        return self._view(state).shared

    def _view(self, state: State) -> _View:
        transaction = state._transaction  # type: ignore[attr-defined]
        view = self._views.get(transaction)
        if view is None:
            if len(self._views) > 64:
                self._views.clear()
            view = self._views[transaction] = _View(partition_state(state))
        return view

    def closed(self, state: State) -> int:
        """Windows ending at or before it have been emitted."""
        return self._view(state).closed

    def observe(self, value: Any, timestamp: int, headers: Any, state: State) -> Observation:
        """Learn from one record (stamped) or marker of a re-keyed partition (``state``: the
        record's key's, or the partition-wide one)."""
        view = self._view(state)
        closed = view.closed
        marker = isinstance(value, dict) and MARKER_FIELD in value
        if marker:
            info = value[MARKER_FIELD]
            source, progress, partitions = info["partition"], info["progress"], info["partitions"]
            late_until, reason = closed, "closed"
        else:
            stamp = _stamp(headers)
            if stamp is None:  # not stamped (a test feeding the windows directly): own time
                return Observation(False, closed, "closed", None)
            source, before, partitions = stamp
            progress = timestamp if timestamp > before else before
            own = before - self.grace_ms if before > NEVER else NEVER
            late_until, reason = (own, "late") if own >= closed else (closed, "quiet")
        old = view.boundary(source)
        if progress == EMPTY:  # an empty partition holds nothing back until it has records
            if old is not None:
                return Observation(marker, late_until, reason, None)
            boundary = EMPTY
        else:
            boundary = floor_to(progress - self.grace_ms if progress > NEVER else NEVER,
                                self.pane_ms)  # fmt: skip
            if old is not None and old != EMPTY and boundary <= old:
                return Observation(marker, late_until, reason, None)
        view.boundaries[source] = boundary
        view.shared.set_bytes(f"{SOURCE}{source}", _PROGRESS.pack(boundary))
        watermark = EMPTY
        for partition in range(partitions):
            found = view.boundary(partition)
            if found is None:  # never heard of: it holds every window back
                return Observation(marker, late_until, reason, None)
            watermark = min(watermark, found)
        if watermark == EMPTY or watermark <= closed:
            return Observation(marker, late_until, reason, None)
        view.closed = watermark
        view.shared.set_bytes(CLOSED, _PROGRESS.pack(watermark))
        return Observation(marker, late_until, reason, Advance(closed, watermark))
