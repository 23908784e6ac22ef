"""The gateway's circuit breaker on its own (no broker: only the gate is exercised)."""

from __future__ import annotations

import asyncio
import time

import pytest

from movieflix_lab.config import Settings
from movieflix_lab.serve import delivery as module
from movieflix_lab.serve.delivery import KafkaDelivery, KafkaUnavailableError
from tests.fixtures.kafka import free_port


@pytest.fixture
def gate() -> KafkaDelivery:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}",
                        gateway_delivery_timeout_s=2.0)  # fmt: skip
    delivery = KafkaDelivery(settings)
    # No poll thread: librdkafka's callbacks (here "all brokers down") arrive only from it.
    delivery._stop.set()
    delivery._poller.join(5)
    delivery._down_since = None
    return delivery


def test_while_failing_requests_are_refused_at_once_but_one_a_second(gate, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    gate._failed("Local: Message timed out")
    assert not gate.kafka_up and "Message timed out" in (gate.failing or "")
    gate._canary_busy, gate._canary_at = True, now[0]  # a try is under way
    started = time.perf_counter()
    with pytest.raises(KafkaUnavailableError, match="confirmed no delivery"):
        asyncio.run(gate.deliver([]))
    assert time.perf_counter() - started < 0.5  # at once
    gate._canary_busy = False
    now[0] += 0.5  # within the second after the try: still refused
    with pytest.raises(KafkaUnavailableError):
        asyncio.run(gate.deliver([]))
    # No request to try for two delivery timeouts: the circuit closes by itself.
    now[0] += 2 * gate.timeout_s + 0.1
    assert gate.failing is None and gate.kafka_up


def test_a_refused_or_missing_topic_error_does_not_open_the_circuit() -> None:
    codes = module._NOT_CONFIRMING
    from confluent_kafka import KafkaError

    assert KafkaError._MSG_TIMED_OUT in codes and KafkaError.NOT_ENOUGH_REPLICAS in codes
    assert KafkaError.UNKNOWN_TOPIC_OR_PART not in codes
    assert KafkaError.TOPIC_AUTHORIZATION_FAILED not in codes
