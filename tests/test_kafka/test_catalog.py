"""The topic catalog on a real broker."""

from collections import Counter

from confluent_kafka import TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.kafka.catalog import (
    CATALOG,
    WATCH_HISTORY,
    TopicSpec,
    all_topics,
    create_topics,
    describe_topics,
    partition_for_user,
    watch_history_key,
)
from movieflix_lab.kafka.client import admin_client, consumer, producer


def _broker_configs(settings: Settings, name: str) -> dict[str, str]:
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    admin = admin_client(settings)  # keep the client alive until the future resolves
    entries = admin.describe_configs([resource])[resource].result()
    return {key: entry.value for key, entry in entries.items()}


def _consume_all(settings: Settings, topic: str, expected: int) -> list:
    reader = consumer(settings)
    reader.subscribe([topic])
    messages = []
    try:
        for _ in range(200):
            for message in reader.consume(num_messages=500, timeout=0.2):
                assert message.error() is None, message.error()
                messages.append(message)
            if len(messages) >= expected:
                break
    finally:
        reader.close()
    return messages


def test_catalog_is_created_idempotently_with_its_configs(kafka: Settings) -> None:
    first = {r.name: r.status for r in create_topics(kafka)}
    assert set(first) == {spec.name for spec in all_topics()}
    assert {spec.name for spec in CATALOG} < set(first)  # the sources, and the derived topics
    assert set(first.values()) <= {"created", "exists"}

    again = create_topics(kafka)
    assert [(r.name, r.status, r.differences) for r in again] == [
        (spec.name, "exists", ()) for spec in all_topics()
    ]

    described = {d.name: d for d in describe_topics(kafka)}
    for spec in CATALOG:
        assert described[spec.name].partitions == kafka.topic_partitions
        assert described[spec.name].in_catalog
        configs = _broker_configs(kafka, spec.name)
        for key, value in spec.config.items():
            assert configs[key] == value, (spec.name, key)
    assert _broker_configs(kafka, "watch-history")["cleanup.policy"] == "compact"
    assert described["watch-history"].cleanup_policy == "compact"


def test_drift_is_reported_then_aligned_with_alter(kafka: Settings, unique_topic: str) -> None:
    spec = TopicSpec(unique_topic, "test", "user id", {"cleanup.policy": "compact"}, partitions=2)
    assert create_topics(kafka, specs=[spec])[0].status == "created"

    wanted = TopicSpec(
        unique_topic, "test", "user id", {"cleanup.policy": "delete", "retention.ms": "3600000"},
        partitions=4,
    )  # fmt: skip
    report = create_topics(kafka, specs=[wanted])[0]
    assert report.status == "differs"
    assert "partitions 2 (catalog: 4)" in report.differences
    assert "cleanup.policy=compact (catalog: delete)" in report.differences

    assert create_topics(kafka, specs=[wanted], alter=True)[0].status == "altered"
    assert create_topics(kafka, specs=[wanted])[0].status == "exists"
    described = {d.name: d for d in describe_topics(kafka)}[unique_topic]
    assert (described.partitions, described.cleanup_policy, described.retention_ms) == (
        4, "delete", 3_600_000,
    )  # fmt: skip
    assert not described.in_catalog


def test_keys_land_where_the_java_partitioner_puts_them(kafka: Settings, unique_topic: str) -> None:
    """librdkafka's murmur2_random, our producers' partitioner, agrees with partition_for_user."""
    create_topics(kafka, specs=[TopicSpec(unique_topic, "test", "user id", partitions=6)])
    out = producer(kafka)
    users = [f"user-{i}" for i in range(300)]
    for user in users:
        out.produce(unique_topic, key=user, value=b"{}")
    assert out.flush(30) == 0

    messages = _consume_all(kafka, unique_topic, len(users))
    assert len(messages) == len(users)
    for message in messages:
        assert message.partition() == partition_for_user(message.key().decode(), 6)
    assert len(Counter(m.partition() for m in messages)) == 6

    described = {d.name: d for d in describe_topics(kafka)}[unique_topic]
    assert described.messages == len(users)


def test_watch_history_keeps_a_users_records_in_one_partition(kafka: Settings) -> None:
    create_topics(kafka, specs=[WATCH_HISTORY])
    out = producer(kafka)
    partitions = WATCH_HISTORY.partitions_for(kafka)
    sent = []
    for user in ("u1", "u2", "u3"):
        for movie in ("m1", "m2", "m3", "m4"):
            key = watch_history_key(user, movie)
            out.produce(
                WATCH_HISTORY.name, key=key, value=b"{}",
                partition=partition_for_user(user, partitions),
            )  # fmt: skip
            sent.append(key)
    assert out.flush(30) == 0

    reader = consumer(kafka)
    high = {}
    for p in range(partitions):
        _, high[p] = reader.get_watermark_offsets(TopicPartition(WATCH_HISTORY.name, p), timeout=10)
    reader.close()
    messages = [m for m in _consume_all(kafka, WATCH_HISTORY.name, sum(high.values()))
                if m.key().decode() in sent]  # fmt: skip
    by_user: dict[str, set[int]] = {}
    for message in messages:
        user = message.key().decode().split(":")[0]
        by_user.setdefault(user, set()).add(message.partition())
    assert sorted(by_user) == ["u1", "u2", "u3"]
    assert all(len(parts) == 1 for parts in by_user.values()), by_user
    for user, parts in by_user.items():
        assert parts == {partition_for_user(user, partitions)}


def test_duplicate_specs_are_merged_and_conflicts_refused(
    kafka: Settings, unique_topic: str
) -> None:
    from movieflix_lab.kafka.exceptions import TopicError

    spec = TopicSpec(unique_topic, "test", "user id", partitions=2)
    reports = create_topics(kafka, specs=[*CATALOG, spec, spec, *CATALOG])
    assert [r.name for r in reports].count(unique_topic) == 1
    other = TopicSpec(unique_topic, "test", "user id", partitions=3)
    import pytest

    with pytest.raises(TopicError, match="two different specs"):
        create_topics(kafka, specs=[spec, other])
