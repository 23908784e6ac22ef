"""Following a topic in a background thread: JSON records into a bounded buffer.

Used to read alerts back (the fraud evaluation) and to answer ``GET /v1/fraud/alerts``.
Assigns every partition itself (no consumer group, nothing committed), from the beginning
or from the current end, and keeps the newest ``capacity`` records with the wall-clock time
each was received.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.events.codec import loads
from movieflix_lab.kafka.client import consumer, watermarks

__all__ = ["Received", "TopicTail"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    value: dict[str, Any]
    received_ms: float
    offset: int
    partition: int


class TopicTail:
    """Follows ``topic`` from ``start`` (``beginning`` or ``end``) until :meth:`stop`."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        *,
        start: Literal["beginning", "end"] = "end",
        capacity: int = 100_000,
        accept: Callable[[dict[str, Any]], bool] | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """``on_record``: called (in the follower thread) with each accepted record instead
        of keeping it in :attr:`records`."""
        self.topic = topic
        self.records: deque[Received] = deque(maxlen=capacity)
        self.unreadable = 0
        #: The offset of the last message read, per partition (readable or not).
        self.positions: dict[int, int] = {}
        self._accept = accept
        self._on_record = on_record
        self._settings = settings
        self._consumer = consumer(settings)
        metadata = self._consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        if not partitions:
            raise KafkaException(f"topic {topic} does not exist")
        offset = OFFSET_BEGINNING if start == "beginning" else OFFSET_END
        assignment = []
        for p in partitions:
            if start == "end":  # resolve now: records written after this call are all seen
                offset = watermarks(self._consumer, topic, p)[1]
            assignment.append(TopicPartition(topic, p, offset))
        self._consumer.assign(assignment)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"tail-{topic}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._consumer.poll(0.2)
            except KafkaException as exc:  # keep following; the broker may come back
                logger.warning("reading %s: %s", self.topic, exc)
                time.sleep(1)
                continue
            if message is None or message.error():
                continue
            self.positions[message.partition()] = message.offset()
            try:
                value = loads(message.value())
            except (TypeError, ValueError):
                self.unreadable += 1
                continue
            if self._accept is not None and not self._accept(value):
                continue
            if self._on_record is not None:
                try:
                    self._on_record(value)
                except Exception:  # one bad record must not stop the follower
                    logger.exception("handling a record of %s", self.topic)
                    self.unreadable += 1
                continue
            with self._lock:
                self.records.append(
                    Received(value, time.time() * 1000, message.offset(), message.partition())
                )
        self._consumer.close()

    def caught_up(self, timeout: float = 60.0) -> bool:
        """Wait until everything in the topic when called has been read; False on timeout."""
        client = consumer(self._settings)
        try:
            meta = client.list_topics(self.topic, timeout=10).topics[self.topic].partitions
            ends = {}
            for p in meta:
                low, high = watermarks(client, self.topic, p)
                if high > low:
                    ends[p] = high
        finally:
            client.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.positions.get(p, -1) >= high - 1 for p, high in ends.items()):
                return True
            time.sleep(0.1)
        return False

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.records)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
