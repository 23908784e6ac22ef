"""Writing events to their topics: routing by type, keys, partitions — one path for all.

The gateway and the simulator both write through :class:`EventWriter`, so every event lands
in the topic its type belongs to, keyed by user id, with the event time as the Kafka
timestamp (what the stream apps' windows use), encoded by the one codec: JSON, or Avro's
single-object encoding with ``MOVIEFLIX_WIRE_FORMAT=avro`` (every reader takes both).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message
from quixstreams.kafka import Producer

from movieflix_lab.config import Settings
from movieflix_lab.events.codec import encode
from movieflix_lab.events.fast import WireEvent
from movieflix_lab.events.models import EventBase
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.kafka.catalog import (
    LOGIN_EVENTS,
    SEARCH_EVENTS,
    USER_INTERACTIONS,
    WATCH_HISTORY,
    TopicSpec,
    partition_for_user,
    watch_history_key,
)
from movieflix_lab.kafka.client import producer_config, quix_connection

__all__ = ["TOPIC_BY_EVENT_TYPE", "DeliveryCallback", "EventWriter", "Route", "route"]

logger = logging.getLogger(__name__)

#: Which topic each event type goes to.
TOPIC_BY_EVENT_TYPE: dict[str, TopicSpec] = {
    "play": USER_INTERACTIONS,
    "pause": USER_INTERACTIONS,
    "seek": USER_INTERACTIONS,
    "stop": USER_INTERACTIONS,
    "rate": USER_INTERACTIONS,
    "watch": WATCH_HISTORY,
    "search": SEARCH_EVENTS,
    "login": LOGIN_EVENTS,
}

DeliveryCallback = Callable[[KafkaError | None, Message], None]


@dataclass(frozen=True)
class Route:
    topic: str
    key: str
    #: Set only where the key is not the user id (watch-history); else the partitioner picks.
    partition: int | None = None


def route(event: EventBase | WireEvent, partitions_of: Callable[[str], int]) -> Route:
    """Where an event goes.

    >>> from movieflix_lab.events import RateEvent
    >>> e = RateEvent(event_id="00000000-0000-4000-8000-000000000001", user_id="u1",
    ...               timestamp="2026-03-02T10:00:00Z", movie_id="m1", rating=4)
    >>> route(e, lambda topic: 6)
    Route(topic='user-interactions', key='u1', partition=None)
    """
    spec = TOPIC_BY_EVENT_TYPE[event.event_type]  # type: ignore[union-attr]
    if spec is WATCH_HISTORY:
        movie_id: str = event.movie_id  # type: ignore[union-attr,assignment]
        return Route(
            spec.name,
            watch_history_key(event.user_id, movie_id),
            partition_for_user(event.user_id, partitions_of(spec.name)),
        )
    return Route(spec.name, event.user_id)


class EventWriter:
    """Produces events through the Quix Streams producer (idempotent, acks=all)."""

    def __init__(
        self,
        settings: Settings,
        *,
        error_callback: Callable[[KafkaError], None] | None = None,
        **config_overrides: Any,
    ) -> None:
        options: dict[str, Any] = {"error_callback": error_callback} if error_callback else {}
        self._producer = Producer(
            broker_address=quix_connection(settings),
            extra_config=producer_config(settings, **config_overrides),
            **options,
        )
        self._partitions: dict[str, int] = {}
        #: JSON or Avro's single-object encoding (``MOVIEFLIX_WIRE_FORMAT``).
        self.wire_format = settings.wire_format
        #: Delivery errors of events sent without a callback of their own.
        self.failures: list[str] = []

    def _record_failure(self, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            self.failures.append(f"{message.topic()}: {error.str()}")

    def partitions_of(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            metadata = self._producer._producer.list_topics(topic, timeout=10)
            count = len(metadata.topics[topic].partitions)
            if count == 0:
                raise LookupError(
                    f"topic {topic} does not exist: run `movieflix-lab topics create`"
                )
            self._partitions[topic] = count
        return count

    def send(
        self, event: EventBase | WireEvent, on_delivery: DeliveryCallback | None = None
    ) -> Route:
        """Queue one event; ``on_delivery`` fires from :meth:`poll`/:meth:`flush`."""
        where = route(event, self.partitions_of)
        self._producer.produce(
            where.topic,
            value=encode(event, self.wire_format),
            key=where.key,
            partition=where.partition,
            timestamp=event.timestamp_ms,
            on_delivery=on_delivery or self._record_failure,
        )
        return where

    def topics_exist(self, topics: list[str], timeout: float = 5.0) -> list[str]:
        """The topics of ``topics`` missing on the cluster (raises if it does not answer)."""
        metadata = self._producer._producer.list_topics(timeout=timeout)
        return [topic for topic in topics if topic not in metadata.topics]

    def poll(self, timeout: float = 0) -> None:
        self._producer.poll(timeout)

    def flush(self, timeout: float | None = None) -> int:
        """Wait for every queued event; returns how many are still undelivered."""
        return self._producer.flush(timeout)

    def __len__(self) -> int:
        return len(self._producer)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        """Flush; raise if an event sent without a callback was not delivered."""
        remaining = self.flush(30)
        if exc_type is None and (remaining or self.failures):
            first = self.failures[0] if self.failures else "delivery timed out"
            raise MovieflixError(
                f"{len(self.failures) + remaining} event(s) not delivered; first: {first}"
            )
