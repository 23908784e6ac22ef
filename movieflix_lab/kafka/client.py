"""Kafka client settings shared by every producer, consumer and admin client.

All clients get their connection settings here, from :class:`~movieflix_lab.config.Settings`,
so pointing ``MOVIEFLIX_KAFKA_BOOTSTRAP`` (plus SASL/TLS settings) at another cluster moves
every command at once.

Producers use the ``murmur2_random`` partitioner: the Java client's default. A key then lands
in the same partition whoever wrote it (the gateway, the simulator, a Kafka Streams job), and
:func:`partition_for_key` computes that partition in Python.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from quixstreams.kafka.configuration import ConnectionConfig

from movieflix_lab.config import Settings
from movieflix_lab.kafka.exceptions import KafkaUnavailable
from movieflix_lab.logs import LIBRDKAFKA_LOGGER

__all__ = [
    "admin_client",
    "client_config",
    "cluster_brokers",
    "consumer",
    "murmur2",
    "partition_for_key",
    "producer",
    "producer_config",
    "quix_connection",
    "wait_until_reachable",
]

_librdkafka_log = logging.getLogger(LIBRDKAFKA_LOGGER)


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings to connect to the configured cluster.

    Examples
    --------
    >>> cfg = client_config(Settings(kafka_bootstrap="k:9093", kafka_security_protocol="SASL_SSL",
    ...                              kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u",
    ...                              kafka_sasl_password="p"))
    >>> cfg["bootstrap.servers"], cfg["security.protocol"], cfg["sasl.username"]
    ('k:9093', 'SASL_SSL', 'u')
    """
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        config["sasl.username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password is not None:
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    if settings.kafka_ssl_certificate_location:
        config["ssl.certificate.location"] = str(settings.kafka_ssl_certificate_location)
    if settings.kafka_ssl_key_location:
        config["ssl.key.location"] = str(settings.kafka_ssl_key_location)
    config.update(settings.kafka_client_config)
    config.update(overrides)
    return config


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Settings for a durable, Java-compatible producer: idempotent, acks=all, murmur2."""
    return client_config(
        settings,
        **{
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "compression.type": "lz4",
            **overrides,
        },
    )


def quix_connection(settings: Settings) -> ConnectionConfig:
    """The connection settings in Quix Streams' form (for ``Application`` and its clients)."""
    return ConnectionConfig.from_librdkafka_dict(client_config(settings), ignore_extras=True)


def admin_client(settings: Settings, **overrides: Any) -> AdminClient:
    return AdminClient(client_config(settings, logger=_librdkafka_log, **overrides))


def producer(settings: Settings, **overrides: Any) -> Producer:
    return Producer(producer_config(settings, logger=_librdkafka_log, **overrides))


def consumer(settings: Settings, group_id: str | None = None, **overrides: Any) -> Consumer:
    """A consumer; without ``group_id`` a throw-away group that commits nothing."""
    config = client_config(
        settings,
        **{
            "group.id": group_id or f"movieflix-lab-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": group_id is not None,
            "auto.offset.reset": "earliest",
            "logger": _librdkafka_log,
            **overrides,
        },
    )
    return Consumer(config)


def wait_until_reachable(settings: Settings, timeout: float | None = None) -> int:
    """Return the number of brokers once the cluster answers a metadata request.

    Raises :class:`KafkaUnavailable` with a one-line message when it does not within
    ``timeout`` seconds (default ``MOVIEFLIX_KAFKA_CONNECT_TIMEOUT_S``).
    """
    admin = admin_client(settings)
    try:
        metadata = admin.list_topics(timeout=timeout or settings.kafka_connect_timeout_s)
    except KafkaException as exc:
        hint = (
            "start the local broker with `movieflix-lab broker start`"
            if settings.uses_local_broker
            else "check MOVIEFLIX_KAFKA_BOOTSTRAP and the SASL/TLS settings"
        )
        raise KafkaUnavailable(
            f"no Kafka broker answers at {settings.bootstrap_servers} "
            f"({exc.args[0].str() if exc.args else exc}): {hint}"
        ) from None
    return len(metadata.brokers)


def cluster_brokers(settings: Settings) -> int:
    """How many brokers the cluster has: the local cluster's node count (a node that is down
    still counts: a topic created meanwhile must not get fewer replicas), else the brokers
    the cluster's metadata lists."""
    if settings.uses_local_broker:
        return settings.local_nodes
    return wait_until_reachable(settings)


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (``org.apache.kafka.common.utils.Utils.murmur2``), unsigned.

    Examples
    --------
    >>> murmur2(b"21")
    3321034988
    >>> murmur2(b"")
    275646681
    """
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & ~3
    extra = length % 4
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for_key(key: str | bytes, partitions: int) -> int:
    """The partition the Java client (and ``murmur2_random``) picks for ``key``.

    Examples
    --------
    >>> partition_for_key("user-42", 6) == partition_for_key(b"user-42", 6)
    True
    """
    raw = key.encode() if isinstance(key, str) else key
    return (murmur2(raw) & 0x7FFFFFFF) % partitions


_LEADERLESS = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def watermarks(
    reader: Consumer, topic: str, partition: int, timeout: float = 30.0
) -> tuple[int, int]:
    """(low, high) offsets of a partition, waiting out a leader election (a topic just
    created has no leader for a moment)."""
    from confluent_kafka import TopicPartition

    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), 10)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = error is not None and error.code() in _LEADERLESS
            if not retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
