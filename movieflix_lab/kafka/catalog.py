"""The topic catalog: the single source of truth for MovieFlix Lab's Kafka topics.

Every topic the kit reads or writes is a :class:`TopicSpec` in :data:`CATALOG`; later parts
add their derived topics (window results and the like) to :data:`DERIVED_TOPICS` here, so
``movieflix-lab topics create`` always creates everything.

Keys and partitions
-------------------
Records are keyed by user id, so all of a user's events sit in one partition, in order,
and a stateful app sees one user's events on one instance.

``watch-history`` is log-compacted, and compaction keeps only the newest record per key. Its
key is therefore ``"<user_id>:<movie_id>"`` (see :func:`watch_history_key`): compaction
keeps the latest viewing of every movie each user watched — exactly the user-by-item
matrix the recommender needs to rebuild a user's full history — rather than only each
user's last viewing (key = user id) or every viewing forever (no compaction). A composite
key would scatter a user's movies over partitions, so producers set the partition
explicitly from the user id with :func:`partition_for_user`: the same murmur2 hash the
Java client and ``murmur2_random`` use for a record keyed by the user id alone. All of a
user's watch-history therefore shares a partition with the rest of that user's events.
The per-user aggregation the recommender wants (rewatch counts, totals) is computed from
that stream; the compacted topic is the durable rebuild source.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from movieflix_lab.config import Settings
from movieflix_lab.kafka.client import admin_client, cluster_brokers, partition_for_key
from movieflix_lab.kafka.exceptions import TopicError

__all__ = [
    "CATALOG",
    "DEAD_LETTERS",
    "DERIVED_TOPICS",
    "FRAUD_SIGNALS",
    "LOGIN_EVENTS",
    "RECS_UPDATES",
    "SEARCH_EVENTS",
    "USER_INTERACTIONS",
    "WATCH_HISTORY",
    "TopicDescription",
    "TopicReport",
    "TopicSpec",
    "all_topics",
    "create_topics",
    "derived_topic",
    "describe_topics",
    "partition_for_user",
    "replication",
    "topic",
    "watch_history_key",
]

logger = logging.getLogger(__name__)

DAY_MS = 24 * 60 * 60 * 1000


def _frozen(config: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(config))


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, what it holds, its key, and the configs it must have."""

    name: str
    holds: str
    key: str
    config: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    #: ``None``: the settings' ``topic_partitions``.
    partitions: int | None = None

    def partitions_for(self, settings: Settings) -> int:
        return self.partitions or settings.topic_partitions


USER_INTERACTIONS = TopicSpec(
    "user-interactions",
    "play, pause, seek, stop and rate events",
    "user id",
    _frozen({"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}),
)
WATCH_HISTORY = TopicSpec(
    "watch-history",
    "one record per finished viewing session; compacted to the latest per user and movie",
    "user id:movie id, partitioned by user id",
    _frozen(
        {
            "cleanup.policy": "compact",
            # Compact soon after a segment rolls, but keep a day uncompacted so a stream app
            # that falls behind still sees every viewing (rewatches count for confidence).
            # The lag is measured on record timestamps (event time): replayed history
            # older than a day is compacted as soon as its segment rolls.
            "min.compaction.lag.ms": str(DAY_MS),
            "segment.ms": str(DAY_MS),
            "min.cleanable.dirty.ratio": "0.25",
        }
    ),
)
SEARCH_EVENTS = TopicSpec(
    "search-events",
    "searches (query text, result count)",
    "user id",
    _frozen({"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}),
)
LOGIN_EVENTS = TopicSpec(
    "login-events",
    "login attempts (ip, device, country, success)",
    "user id",
    _frozen({"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}),
)
FRAUD_SIGNALS = TopicSpec(
    "fraud-signals",
    "alerts from fraud rules and models",
    "user id (or ip for ip rules)",
    _frozen({"cleanup.policy": "delete", "retention.ms": str(90 * DAY_MS)}),
)
DEAD_LETTERS = TopicSpec(
    "dead-letters",
    "messages no app could read, with the error and their origin",
    "origin key",
    _frozen({"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}),
)

#: The source topics and the shared outputs.
CATALOG: tuple[TopicSpec, ...] = (
    USER_INTERACTIONS,
    WATCH_HISTORY,
    SEARCH_EVENTS,
    LOGIN_EVENTS,
    FRAUD_SIGNALS,
    DEAD_LETTERS,
)


def span_label(span: timedelta) -> str:
    """How a window size reads in a topic name: ``30m``, ``2h``, ``45s``.

    >>> span_label(timedelta(minutes=30)), span_label(timedelta(hours=2))
    ('30m', '2h')
    >>> span_label(timedelta(seconds=45))
    '45s'
    """
    seconds = int(span.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def genre_watch_time_names(window: timedelta, hop: timedelta) -> tuple[str, str]:
    """The genre app's result topics: tumbling, hopping."""
    size = span_label(window)
    return (
        f"analytics.genre-watch-time.{size}",
        f"analytics.genre-watch-time.{size}-hop{span_label(hop)}",
    )


def search_volume_names(window: timedelta) -> tuple[str, str]:
    """The search app's result topics: per user, total."""
    size = span_label(window)
    return f"analytics.search-volume.user.{size}", f"analytics.search-volume.total.{size}"


def derived_topic(name: str, holds: str, key: str = "window group") -> TopicSpec:
    """A topic of results a stream app derives (kept 30 days)."""
    config = {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}
    return TopicSpec(name, holds, key, _frozen(config))


#: The recs app's output: each touched user's fresh vector and full history row. Compacted:
#: the newest per user is what a serve app starting up needs to catch up.
RECS_UPDATES = TopicSpec(
    "recs.user-updates",
    "each touched user's fresh ALS vector and full history row",
    "user id",
    _frozen(
        {
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.25",
            "segment.ms": str(DAY_MS),
        }
    ),
)

#: Topics the stream apps derive with their default windows (other window sizes make
#: topics of their own, created by the app's runner).
DERIVED_TOPICS: tuple[TopicSpec, ...] = (
    derived_topic("analytics.genre-watch-time.30m", "genre watch time, tumbling", "genre"),
    derived_topic("analytics.genre-watch-time.30m-hop5m", "genre watch time, hopping", "genre"),
    derived_topic("analytics.search-volume.user.30m", "searches per user per window", "user id"),
    derived_topic("analytics.search-volume.total.30m", "searches and top queries", "all"),
    derived_topic(
        "analytics.late-events", "records that arrived after their window closed", "window group"
    ),
    RECS_UPDATES,
)


def all_topics() -> tuple[TopicSpec, ...]:
    """Every topic of the catalog, source and derived."""
    return CATALOG + DERIVED_TOPICS


def topic(name: str) -> TopicSpec:
    """Look a topic up by name.

    >>> topic("watch-history").config["cleanup.policy"]
    'compact'
    """
    for spec in all_topics():
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in all_topics())
    raise KeyError(f"no topic {name!r} in the catalog (known: {known})")


def watch_history_key(user_id: str, movie_id: str) -> str:
    """The compaction key of a watch-history record.

    >>> watch_history_key("u17", "m204")
    'u17:m204'
    """
    return f"{user_id}:{movie_id}"


def partition_for_user(user_id: str, partitions: int) -> int:
    """The partition of every record of ``user_id``, whatever the record's key."""
    return partition_for_key(user_id, partitions)


# --- create / describe ---------------------------------------------------------------


@dataclass(frozen=True)
class TopicReport:
    """What ``create_topics`` found or did for one topic."""

    name: str
    status: Literal["created", "exists", "differs", "altered"]
    differences: tuple[str, ...] = ()


@dataclass(frozen=True)
class TopicDescription:
    name: str
    partitions: int
    replication_factor: int
    cleanup_policy: str
    retention_ms: int | None
    messages: int
    in_catalog: bool


def _result(future: Any, what: str) -> Any:
    try:
        return future.result()
    except KafkaException as exc:
        raise TopicError(f"{what}: {exc.args[0].str() if exc.args else exc}") from None


def _existing_partitions(admin: AdminClient, timeout: float) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"could not list topics: {exc.args[0].str()}") from None
    return {name: len(meta.partitions) for name, meta in metadata.topics.items()}


def replication(settings: Settings, brokers: int) -> tuple[int, dict[str, str]]:
    """The replication factor of a new topic and the configs that go with it.

    Unless set (``MOVIEFLIX_TOPIC_REPLICATION_FACTOR``): three replicas on a cluster of
    three brokers or more, with ``min.insync.replicas=2``, so an acknowledged write is on two
    brokers and one broker may be lost without losing a write or refusing one — what a
    production cluster runs; one replica per broker below that.

    ``min.insync.replicas`` is always set on the topic, never above its replicas: a cluster
    whose default is 2 (the local three-node one) must not refuse every write to a topic
    given one replica.

    >>> replication(Settings(), 3), replication(Settings(), 1)
    ((3, {'min.insync.replicas': '2'}), (1, {'min.insync.replicas': '1'}))
    >>> replication(Settings(topic_replication_factor=2), 5)
    (2, {'min.insync.replicas': '1'})
    """
    replicas = settings.topic_replication_factor or max(1, min(3, brokers))
    in_sync = settings.topic_min_insync_replicas or (2 if replicas >= 3 else 1)
    if in_sync > replicas:
        raise TopicError(
            f"MOVIEFLIX_TOPIC_MIN_INSYNC_REPLICAS={in_sync} is more than the {replicas} "
            "replica(s) a topic gets: no write could ever be acknowledged; lower it"
        )
    return replicas, {"min.insync.replicas": str(in_sync)}


def _topic_configs(admin: AdminClient, names: Iterable[str]) -> dict[str, dict[str, str]]:
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    if not resources:
        return {}
    futures = admin.describe_configs(resources)
    return {
        resource.name: {
            key: entry.value for key, entry in _result(future, f"describe {resource.name}").items()
        }
        for resource, future in futures.items()
    }


def _differences(
    spec: TopicSpec, settings: Settings, partitions: int, configs: Mapping[str, str]
) -> list[str]:
    diffs = []
    want = spec.partitions_for(settings)
    if partitions != want:
        diffs.append(f"partitions {partitions} (catalog: {want})")
    for key, value in spec.config.items():
        if configs.get(key) != value:
            diffs.append(f"{key}={configs.get(key)} (catalog: {value})")
    return diffs


def create_topics(
    settings: Settings,
    *,
    specs: Iterable[TopicSpec] | None = None,
    alter: bool = False,
    timeout: float = 30.0,
) -> list[TopicReport]:
    """Create every missing topic of the catalog; report how existing ones differ.

    Idempotent. With ``alter=True`` existing topics are brought in line: configs are set
    and partitions are added (never removed — Kafka cannot shrink a topic, and adding
    partitions moves where new records of a key go, so it is never done silently).
    """
    unique: dict[str, TopicSpec] = {}
    for spec in specs if specs is not None else all_topics():
        seen = unique.setdefault(spec.name, spec)
        if (seen.partitions, dict(seen.config)) != (spec.partitions, dict(spec.config)):
            raise TopicError(f"two different specs for topic {spec.name}")
    specs = list(unique.values())  # a duplicate would break the DescribeConfigs request
    admin = admin_client(settings)
    existing = _existing_partitions(admin, timeout)

    missing = [spec for spec in specs if spec.name not in existing]
    reports: list[TopicReport] = []
    if missing:
        replicas, durability = replication(settings, cluster_brokers(settings))
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions_for(settings),
                    replication_factor=replicas,
                    config={**durability, **spec.config},
                )
                for spec in missing
            ],
            operation_timeout=timeout,
        )
        raced = False
        for spec in missing:
            try:
                futures[spec.name].result()
                reports.append(TopicReport(spec.name, "created"))
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicError(f"could not create topic {spec.name}: {error.str()}") from None
                raced = True  # created meanwhile, or not yet in our metadata: compare it below
        if raced:
            existing = _existing_partitions(admin, timeout)

    created = {report.name for report in reports}
    present = [spec for spec in specs if spec.name in existing and spec.name not in created]
    reports += [  # exists on the broker, not yet in any metadata we can read: nothing to compare
        TopicReport(spec.name, "exists")
        for spec in specs
        if spec.name not in existing and spec.name not in created
    ]
    configs = _topic_configs(admin, (spec.name for spec in present))
    for spec in present:
        diffs = _differences(spec, settings, existing[spec.name], configs[spec.name])
        if not diffs:
            reports.append(TopicReport(spec.name, "exists"))
        elif not alter:
            reports.append(TopicReport(spec.name, "differs", tuple(diffs)))
        else:
            _alter(admin, spec, settings, existing[spec.name], timeout)
            reports.append(TopicReport(spec.name, "altered", tuple(diffs)))
    order = {spec.name: i for i, spec in enumerate(specs)}
    return sorted(reports, key=lambda report: order[report.name])


def _alter(
    admin: AdminClient, spec: TopicSpec, settings: Settings, partitions: int, timeout: float
) -> None:
    want = spec.partitions_for(settings)
    if partitions > want:
        raise TopicError(
            f"topic {spec.name} has {partitions} partitions, more than the catalog's {want}: "
            "Kafka cannot remove partitions; raise MOVIEFLIX_TOPIC_PARTITIONS instead"
        )
    if partitions < want:
        future = admin.create_partitions(
            [NewPartitions(spec.name, want)], operation_timeout=timeout
        )[spec.name]
        _result(future, f"add partitions to {spec.name}")
    if spec.config:
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            spec.name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in spec.config.items()
            ],
        )
        for future in admin.incremental_alter_configs([resource]).values():
            _result(future, f"alter configs of {spec.name}")


#: Errors a topic shows for a moment after it is created, while its leaders are elected.
_ELECTING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def _offsets(
    admin: AdminClient, partitions: list[TopicPartition], spec: Any, timeout: float
) -> dict[tuple[str, int], int]:
    """Offsets of ``partitions``; retries while a new topic's leaders are being elected."""
    deadline = time.monotonic() + timeout
    while True:
        futures = admin.list_offsets({tp: spec() for tp in partitions})
        try:
            return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
        except KafkaException as exc:
            error = exc.args[0]
            electing = error.retriable() or error.code() in _ELECTING
            if not electing or time.monotonic() > deadline:
                raise TopicError(f"could not read offsets: {error.str()}") from None
            time.sleep(0.25)


def describe_topics(
    settings: Settings, *, include_internal: bool = False, timeout: float = 30.0
) -> list[TopicDescription]:
    """Every topic on the cluster with its partitions, cleanup, retention and size.

    ``messages`` is the sum over partitions of log-end minus log-start offsets: exact for
    delete-policy topics, an upper bound for compacted ones.
    """
    admin = admin_client(settings)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"could not list topics: {exc.args[0].str()}") from None
    names = sorted(
        name for name in metadata.topics if include_internal or not name.startswith("__")
    )
    configs = _topic_configs(admin, names)

    partitions = [
        TopicPartition(name, p) for name in names for p in metadata.topics[name].partitions
    ]
    counts: dict[str, int] = dict.fromkeys(names, 0)
    if partitions:
        earliest = _offsets(admin, partitions, OffsetSpec.earliest, timeout)
        latest = _offsets(admin, partitions, OffsetSpec.latest, timeout)
        for tp in partitions:
            key = (tp.topic, tp.partition)
            counts[tp.topic] += max(0, latest[key] - earliest[key])

    catalog_names = {spec.name for spec in all_topics()}
    described = []
    for name in names:
        topic_meta = metadata.topics[name]
        first = next(iter(topic_meta.partitions.values()), None)
        retention = configs[name].get("retention.ms")
        described.append(
            TopicDescription(
                name=name,
                partitions=len(topic_meta.partitions),
                replication_factor=len(first.replicas) if first else 0,
                cleanup_policy=configs[name].get("cleanup.policy", "?"),
                retention_ms=int(retention) if retention not in (None, "") else None,
                messages=counts[name],
                in_catalog=name in catalog_names,
            )
        )
    return described
