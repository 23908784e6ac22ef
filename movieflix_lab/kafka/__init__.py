"""Kafka: the local broker's lifecycle, the topic catalog, client settings."""

from movieflix_lab.kafka.broker import BrokerStatus, LocalBroker, fetch_kafka_libs, find_java
from movieflix_lab.kafka.catalog import (
    CATALOG,
    TopicSpec,
    all_topics,
    create_topics,
    describe_topics,
    partition_for_user,
    topic,
    watch_history_key,
)
from movieflix_lab.kafka.client import (
    admin_client,
    client_config,
    consumer,
    partition_for_key,
    producer,
    producer_config,
    wait_until_reachable,
)

__all__ = [
    "CATALOG",
    "BrokerStatus",
    "LocalBroker",
    "TopicSpec",
    "admin_client",
    "all_topics",
    "client_config",
    "consumer",
    "create_topics",
    "describe_topics",
    "fetch_kafka_libs",
    "find_java",
    "partition_for_key",
    "partition_for_user",
    "producer",
    "producer_config",
    "topic",
    "wait_until_reachable",
    "watch_history_key",
]
