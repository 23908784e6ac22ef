"""Delivery confirmation for the gateway: Kafka's callbacks as asyncio futures.

One :class:`~movieflix_lab.kafka.event_writer.EventWriter` per process; a background thread
polls it so delivery reports arrive while requests wait. A request is answered with success
only when Kafka acknowledged every one of its events (acks=all, idempotent producer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message

from movieflix_lab.config import Settings
from movieflix_lab.events.fast import WireEvent
from movieflix_lab.events.models import EventBase
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.kafka.event_writer import TOPIC_BY_EVENT_TYPE, DeliveryCallback, EventWriter

__all__ = ["Delivered", "EventRefusedError", "KafkaDelivery", "KafkaUnavailableError"]

logger = logging.getLogger(__name__)


class KafkaUnavailableError(MovieflixError):
    """Kafka did not confirm the events; nothing may be reported as accepted."""


class EventRefusedError(MovieflixError):
    """Kafka refused an event for what it is (its timestamp, its size), not for being away:
    retrying the same request cannot help, so the client gets a 4xx naming the field."""

    def __init__(self, position: int, field: str, message: str) -> None:
        super().__init__(message)
        self.position, self.field = position, field


#: Broker errors about the record itself → the field to name.
_REFUSED = {KafkaError.INVALID_TIMESTAMP: "timestamp", KafkaError.MSG_SIZE_TOO_LARGE: "body",
            KafkaError.INVALID_RECORD: "body"}  # fmt: skip


@dataclass(frozen=True)
class Delivered:
    event_id: str
    topic: str
    partition: int
    offset: int


#: While deliveries fail, one request in this many seconds is let through to try again (a
#: circuit breaker's half-open state); the others are answered 503 at once.
CANARY_EVERY_S = 1.0
#: Delivery errors that say the cluster answers but does not confirm writes: they open the
#: circuit. Others (a missing topic, a refused event, no authorisation) do not.
_NOT_CONFIRMING = frozenset({
    KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_ENOUGH_REPLICAS, KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
})  # fmt: skip


class KafkaDelivery:
    """Events to Kafka, each request answered when Kafka confirmed all of its events.

    Two ways Kafka can be away. Every broker unreachable: librdkafka says so at once, and
    requests are answered 503 until a metadata probe succeeds. Brokers reachable but not
    confirming writes (a cluster that lost its controller quorum, or too few in-sync
    replicas): only a delivery timing out shows it, after ``gateway_delivery_timeout_s``.
    From the first such failure the gateway answers 503 at once, naming the error, and lets
    one request in ``CANARY_EVERY_S`` through to try; the first that is confirmed closes the
    circuit. ``/readyz`` reports both.
    """

    def __init__(
        self, settings: Settings, *, on_state: Callable[[bool], None] | None = None
    ) -> None:
        """``on_state`` hears (from the poll thread) whether Kafka is up: first at start,
        then at every change."""
        self.timeout_s = settings.gateway_delivery_timeout_s
        self._down_since: float | None = None
        #: Since when, and why, deliveries fail while brokers answer (None: they do not).
        self._failing: tuple[float, str] | None = None
        self._canary_at = 0.0
        self._canary_busy = False
        self._on_state = on_state
        self._writer = EventWriter(
            settings,
            error_callback=self._on_error,
            **{
                # Give up (and answer 503) after this long; the client retries.
                "message.timeout.ms": int(self.timeout_s * 1000),
                "queue.buffering.max.messages": 200_000,
                # A device waits for the ack: batch for 1 ms, not the default 5.
                "linger.ms": 1,
            },
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._poller.start()

    # -- broker state --
    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            if self._down_since is None:
                logger.warning("all Kafka brokers are down: ingestion answers 503")
                self._down_since = time.monotonic()
        else:
            logger.info("kafka: %s", error.str())

    @property
    def kafka_up(self) -> bool:
        return self._down_since is None and self.failing is None

    @property
    def failing(self) -> str | None:
        """Why deliveries fail while the brokers answer (None when they do not).

        With no request to try for two delivery timeouts the circuit closes by itself: a
        gateway taken out of a load balancer for being unready gets no request that could
        show it ready again (the next request that times out opens it again)."""
        if (
            self._failing is not None
            and not self._canary_busy
            and (time.monotonic() - max(self._failing[0], self._canary_at) > 2 * self.timeout_s)
        ):
            self._failing = None
        if self._failing is None:
            return None
        since, reason = self._failing
        return f"Kafka has confirmed no delivery for {time.monotonic() - since:.0f} s: {reason}"

    def _failed(self, reason: str) -> None:
        if self._failing is None:
            logger.warning("Kafka does not confirm deliveries (%s): ingestion answers 503", reason)
            self._failing = (time.monotonic(), reason)

    def _confirmed(self) -> None:
        if self._failing is not None:
            logger.info("Kafka confirms deliveries again after %.1f s",
                        time.monotonic() - self._failing[0])  # fmt: skip
            self._failing = None

    def _poll_loop(self) -> None:
        last_probe = 0.0
        reported: bool | None = None
        while not self._stop.is_set():
            self._writer.poll(0.05)
            if self._on_state is not None and reported != self.kafka_up:
                reported = self.kafka_up
                self._on_state(reported)
            if self._down_since is not None and time.monotonic() - last_probe > 1.0:
                last_probe = time.monotonic()
                with contextlib.suppress(KafkaException):  # still down: try again later
                    self.probe(timeout=0.5)

    def probe(self, timeout: float = 2.0) -> list[str]:
        """Ask Kafka for metadata; returns the gateway's topics that are missing."""
        wanted = sorted({spec.name for spec in TOPIC_BY_EVENT_TYPE.values()})
        try:
            missing = self._writer.topics_exist(wanted, timeout=timeout)
        except KafkaException:
            if self._down_since is None:
                self._down_since = time.monotonic()
            raise
        if self._down_since is not None:
            logger.info(
                "Kafka is reachable again after %.1f s", time.monotonic() - self._down_since
            )
            self._down_since = None
        return missing

    # -- sending --
    async def deliver(self, events: Sequence[EventBase | WireEvent]) -> list[Delivered]:
        """Send ``events`` and wait until Kafka confirmed every one of them.

        One future per request, resolved from the poll thread when the last delivery report
        arrives: one cross-thread wake-up per request, not per event.
        """
        if self._down_since is not None:
            raise KafkaUnavailableError("Kafka is unreachable")
        canary = False
        if self.failing is not None:
            now = time.monotonic()
            if self._canary_busy or now - self._canary_at < CANARY_EVERY_S:
                raise KafkaUnavailableError(self.failing or "Kafka does not confirm deliveries")
            self._canary_busy, self._canary_at, canary = True, now, True
        try:
            return await self._deliver(events)
        finally:
            if canary:
                self._canary_busy = False

    async def _deliver(self, events: Sequence[EventBase | WireEvent]) -> list[Delivered]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        batch = _PendingBatch(len(events), loop, done)
        for position, event in enumerate(events):
            try:
                self._writer.send(event, batch.callback(position))
            except (BufferError, KafkaException, LookupError) as exc:
                raise KafkaUnavailableError(f"could not queue the event: {exc}") from None
        try:
            await asyncio.wait_for(asyncio.shield(done), self.timeout_s + 5)
        except TimeoutError:
            self._failed("no delivery report in time")
            raise KafkaUnavailableError("Kafka did not confirm delivery in time") from None
        if batch.refused is not None:
            raise EventRefusedError(*batch.refused)
        if batch.error is not None:
            if batch.error_code in _NOT_CONFIRMING:
                self._failed(batch.error)
            raise KafkaUnavailableError(batch.error)
        self._confirmed()
        return [
            Delivered(str(event.event_id), topic, partition, offset)
            for event, (topic, partition, offset) in zip(events, batch.delivered, strict=True)
        ]

    def close(self) -> None:
        self._stop.set()
        self._poller.join(timeout=5)
        self._writer.flush(self.timeout_s)


class _PendingBatch:
    """The delivery reports of one request, counted in the poll thread."""

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]):
        self.remaining = size
        #: (topic, partition, offset) per event, in request order.
        self.delivered: list[tuple[str, int, int]] = [("", -1, -1)] * size
        self.error: str | None = None
        self.error_code: int | None = None
        #: (position, field, message) of the first event Kafka refused for what it is.
        self.refused: tuple[int, str, str] | None = None
        self._loop = loop
        self._done = done

    def callback(self, position: int) -> DeliveryCallback:
        # Runs once per event on the poll thread while holding the GIL: keep it minimal.
        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                field = _REFUSED.get(error.code())
                if field is not None and self.refused is None:
                    self.refused = (position, field, f"Kafka refused it: {error.str()}")
                if self.error is None:
                    self.error, self.error_code = error.str(), error.code()
            else:
                self.delivered[position] = (message.topic(), message.partition(), message.offset())
            self.remaining -= 1  # delivery reports all arrive on the poll thread
            if self.remaining == 0:
                self._loop.call_soon_threadsafe(_finish, self._done)

        return report


def _finish(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
