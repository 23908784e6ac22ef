"""What every stream app shares: the Quix ``Application``, dead letters, late events.

A stream app is a module with a pure builder, ``build(app, ...) -> StreamingDataFrame``; the
runner (:mod:`movieflix_lab.streams.runner`), a test or a notebook makes the application with
:func:`stream_application` and runs it. So they all run the same pipeline.

Poison messages (undeserializable, or failing in processing) go to ``dead-letters`` with the
error and their origin (topic, partition, offset), flushed *before* Quix skips them and commits
their offset; the app keeps running and counts them.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic
from quixstreams import Application
from quixstreams.models import Row
from quixstreams.models.topics import Topic, TopicAdmin, TopicConfig, TopicManager
from quixstreams.models.topics.exceptions import CreateTopicFailure, CreateTopicTimeout
from quixstreams.sinks import BaseSink
from quixstreams.state.rocksdb import RocksDBOptions

from movieflix_lab.config import Settings
from movieflix_lab.kafka.catalog import DEAD_LETTERS, replication
from movieflix_lab.kafka.client import cluster_brokers, producer, quix_connection
from movieflix_lab.streams.regroup import Replays

if TYPE_CHECKING:
    from movieflix_lab.streams.metrics import StreamMetrics

__all__ = [
    "DeadLetters",
    "Guarantee",
    "LateEvents",
    "PartitionsLost",
    "SinkFactory",
    "StreamApp",
    "bound_commits",
    "group_name",
    "restart_when_lost",
    "state_options",
    "stream_application",
    "stream_producer_config",
]

logger = logging.getLogger(__name__)

Guarantee = Literal["at-least-once", "exactly-once"]

#: Given an output's name (``tumbling``, ``hopping``, ``rows``...), the sinks for it.
SinkFactory: TypeAlias = Callable[[str], list[BaseSink]]

LATE_EVENTS_TOPIC = "analytics.late-events"
MB = 1024 * 1024


def _text(raw: bytes | str | None) -> dict[str, str | None]:
    if raw is None:
        return {"text": None}
    if isinstance(raw, str):
        return {"text": raw}
    try:
        return {"text": raw.decode()}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}


class DeadLetters:
    """Writes unreadable messages to ``dead-letters`` and counts them.

    In a stream app the letters go through the app's own producer (``internal``, set by
    :func:`stream_application`): Quix flushes it before it commits the offsets of a
    checkpoint, so a skipped message's offset is never committed before its dead letter is
    durable — and under exactly-once the letter is part of the checkpoint's transaction,
    written once. Without it (a library user), each letter is flushed as it is written, one
    broker round trip each: poison then costs the analytics app about twice the throughput
    it costs through the app's producer (`benchmarks/poison.py` measures it).

    The log names the first letters one by one, then sums them up at most every 30 s.
    """

    #: Letters logged one by one before the log only sums them up.
    LOGGED = 10

    def __init__(self, settings: Settings, app_name: str) -> None:
        self.app_name = app_name
        self.count = 0
        self._settings = settings
        self._producer: Any = None
        #: Marks a message processed in the app's checkpoint (set by stream_application).
        self.store_offset: Callable[..., None] | None = None
        #: The app's producer (Quix's, flushed at every checkpoint before the commit).
        self.internal: Any = None
        self._unlogged = 0
        self._logged_at = 0.0

    def send(
        self,
        error: Exception,
        *,
        topic: str | None,
        partition: int | None,
        offset: int | None,
        key: bytes | str | None,
        value: bytes | str | None,
        timestamp_ms: int | None,
    ) -> None:
        record = {
            "app": self.app_name,
            "error": str(error)[:2000],
            "error_type": type(error).__name__,
            "origin": {"topic": topic, "partition": partition, "offset": offset},
            "timestamp_ms": timestamp_ms,
            "key": _text(key)["text"] if key is not None else None,
            "value": _text(value),
            "dead_at_ms": int(time.time() * 1000),
        }
        value_bytes = json.dumps(record).encode()
        headers = {"origin-topic": topic or "", "error-type": type(error).__name__}
        if self.internal is not None:
            self.internal.produce(DEAD_LETTERS.name, value=value_bytes, key=key, headers=headers)
        else:
            if self._producer is None:
                self._producer = producer(self._settings, **{"linger.ms": 0})
            self._producer.produce(DEAD_LETTERS.name, key=key, value=value_bytes, headers=headers)
            # The message is skipped and its offset committed after: durable first.
            if self._producer.flush(30) != 0:
                raise RuntimeError("could not write a dead letter: stopping rather than losing it")
        self.count += 1
        self._log(topic, partition, offset, error)

    def _log(self, topic: str | None, partition: int | None, offset: int | None,
             error: Exception) -> None:  # fmt: skip
        if self.count <= self.LOGGED:
            logger.warning(
                "dead letter from %s[%s]@%s: %s", topic, partition, offset, str(error)[:200]
            )
            if self.count == self.LOGGED:
                logger.warning("further dead letters are summed up at most every 30 s")
            self._logged_at = time.monotonic()
            return
        self._unlogged += 1
        if time.monotonic() - self._logged_at >= 30:
            logger.warning("%d more dead letters (%d in all)", self._unlogged, self.count)
            self._unlogged, self._logged_at = 0, time.monotonic()

    def on_consumer_error(self, exc: Exception, message: Any, log: logging.Logger) -> bool:
        """Quix ``on_consumer_error``: an undeserializable message."""
        if message is None:  # a Kafka error, not a message: let Quix handle it
            return False
        timestamp = message.timestamp()[1] if message.timestamp() else None
        self.send(
            exc,
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=message.key(),
            value=message.value(),
            timestamp_ms=timestamp,
        )
        # Quix skips the message but records no offset for it: a poison message last in its
        # partition would hold the group's lag above 0 and be dead-lettered again on restart.
        if self.store_offset is not None:
            self.store_offset(
                topic=message.topic(), partition=message.partition(), offset=message.offset()
            )
        return True

    def on_processing_error(self, exc: Exception, row: Row | None, log: logging.Logger) -> bool:
        """Quix ``on_processing_error``: a message that failed inside the pipeline."""
        if row is None:
            return False
        self.send(
            exc,
            topic=row.topic,
            partition=row.partition,
            offset=row.offset,
            key=row.key,
            value=json.dumps(row.value, default=str),
            timestamp_ms=row.timestamp,
        )
        return True


@dataclass
class LateEvents:
    """Counts records that arrived after their window closed (past the grace period).

    Passed as Quix's ``on_late``; each late record is also written to
    ``analytics.late-events`` so it is never silently lost.
    """

    settings: Settings
    by_window: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._producer = producer(self.settings)

    def __call__(
        self,
        value: Any,
        key: Any,
        timestamp_ms: int,
        late_by_ms: int,
        start: int,
        end: int,
        store_name: str,
        topic: str,
        partition: int,
        offset: int,
    ) -> bool:
        self.by_window[store_name] += 1
        record = {
            "window": store_name, "key": key, "timestamp_ms": timestamp_ms,
            "late_by_ms": late_by_ms, "window_start_ms": start, "window_end_ms": end,
            "origin": {"topic": topic, "partition": partition, "offset": offset}, "value": value,
        }  # fmt: skip
        self._producer.produce(
            LATE_EVENTS_TOPIC,
            key=str(key).encode(),
            value=json.dumps(record, default=str).encode(),
        )
        self._producer.poll(0)
        return False  # counted and kept: no per-record warning in the log

    @property
    def total(self) -> int:
        return sum(self.by_window.values())

    def flush(self) -> None:
        self._producer.flush(30)


@dataclass
class StreamApp:
    """A Quix application with its dead letters and late-event counter."""

    name: str
    app: Application
    dead_letters: DeadLetters
    late: LateEvents
    state_dir: Path
    instance: str = "0"
    replays: Replays = field(default_factory=Replays)
    #: Its ``/metrics`` (the runner's), when it has them.
    metrics: StreamMetrics | None = None


#: Seconds after which a stream app's producer closes a connection it has not used.
#: librdkafka looks a group coordinator up again only when a broker's connection changes
#: state; once the coordinator's node has left the cluster's metadata (killed for longer
#: than its session) nothing changes, and a transaction's ``send_offsets_to_transaction``
#: waits past any timeout it was given (librdkafka #5456 and #5511, open, in the 2.12 that
#: Quix Streams pins). A blocked app produces nothing, so its idle connections close after
#: this long, and the closing is the change that sends the lookup on: a commit through a
#: coordinator's loss then takes seconds instead of forever
#: (``tests/test_reliability/test_cluster.py`` reproduces it).
IDLE_CONNECTION_MS = 10_000


def stream_producer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings of a stream app's producer (its transactional id aside):
    keys partitioned as the kit's writers partition them, idle connections closed (see
    :data:`IDLE_CONNECTION_MS`), then the user's ``MOVIEFLIX_KAFKA_CLIENT_CONFIG``."""
    return {"partitioner": "murmur2_random", "connections.max.idle.ms": IDLE_CONNECTION_MS,
            **settings.kafka_client_config}  # fmt: skip


def _transactional(settings: Settings, name: str, instance: str, interval: float) -> dict[str, Any]:
    """Exactly-once producer settings: a stable ``transactional.id`` per instance.

    Quix would draw a random id per process, so nothing fences a killed instance: its open
    transaction holds every read_committed reader of its partitions at the last stable
    offset until the broker times it out. With a stable id, the restarted instance's
    ``init_transactions`` aborts it at once. The timeout (as Kafka Streams' 10 s, but at
    least four commit intervals) bounds the wait when a killed instance is not restarted.
    """
    timeout_ms = max(10_000, int(4 * interval * 1000))
    return {
        "transactional.id": f"{group_name(settings, name)}-{instance}",
        "transaction.timeout.ms": timeout_ms,
    }


class PromptTopicAdmin(TopicAdmin):
    """Quix's topic admin, answering as soon as the broker has created the topics.

    Quix creates an app's internal topics (changelogs, repartitions) one at a time and checks
    each creation once a second, so an app's first start waited over a second per topic
    (seven for the analytics app) for creations the broker finishes in milliseconds.
    This one asks for them in one request and returns once the cluster's metadata lists
    them.

    On a cluster of several brokers each learns of a new topic on its own: one may list it
    while the next asked (for its configs) does not know it yet, and Quix then calls a topic
    just created "not found". So a topic this admin created that a broker does not know yet
    is asked for again, until one does.
    """

    _created: set[str]

    def inspect_topics(
        self, topic_names: list[str], timeout: float = 30
    ) -> dict[str, TopicConfig | None]:
        deadline = time.monotonic() + timeout
        found = self._inspect(topic_names, timeout, deadline)
        created: set[str] = getattr(self, "_created", set())
        while late := [n for n in topic_names if found.get(n) is None and n in created]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
            found.update(self._inspect(late, timeout, deadline))
        return found

    def _inspect(
        self, names: list[str], timeout: float, deadline: float
    ) -> dict[str, TopicConfig | None]:
        """Quix's inspection, asked again while the broker asked for the configs does not
        know a topic the one that listed it does (``UNKNOWN_TOPIC_OR_PART``)."""
        while True:
            try:
                return super().inspect_topics(names, timeout=timeout)
            except KafkaException as exc:
                code = exc.args[0].code() if exc.args else None
                if code != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def create_topics(
        self, topics: list[Topic], timeout: float = 30, finalize_timeout: float = 60
    ) -> None:
        existing = self.list_topics(timeout=timeout)
        new = [t for t in topics if t.name not in existing]
        if not new:
            return
        requests = []
        for topic in new:
            config = topic.create_config
            logger.info("creating topic %s", topic.name)
            requests.append(
                NewTopic(topic.name) if config is None else NewTopic(
                    topic.name, num_partitions=config.num_partitions,
                    replication_factor=config.replication_factor, config=config.extra_config,
                )
            )  # fmt: skip
        futures = self.admin_client.create_topics(requests, request_timeout=timeout)
        failed: dict[str, str] = {}
        for name, future in futures.items():
            try:
                future.result(timeout=finalize_timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another instance's
                    failed[name] = exc.args[0].str()
            except TimeoutError:
                raise CreateTopicTimeout(f"no answer creating topic {name!r}") from None
        if failed:
            raise CreateTopicFailure(f"could not create topics: {failed}")
        self._created = getattr(self, "_created", set()) | {t.name for t in new}
        # Created is not yet visible: the broker answering the next metadata request may
        # not know the topic yet (Quix's second of waiting hid that).
        deadline = time.monotonic() + finalize_timeout
        while missing := [t.name for t in new if t.name not in self.list_topics(timeout)]:
            if time.monotonic() > deadline:
                raise CreateTopicTimeout(f"created topics never appeared: {missing}")
            time.sleep(0.05)


def bound_commits(producer: Any, seconds: float) -> None:
    """Give ``producer``'s checkpoint commits a deadline of ``seconds``.

    Off the revoke path Quix commits a checkpoint's transaction with no timeout. With a
    deadline, a commit librdkafka cannot finish fails with a retriable timeout, Quix's
    attempts end, and the run starts again (:func:`movieflix_lab.streams.runner.run_app`):
    its new producer fences the old one and the checkpoint is read again from the last
    committed offsets. (librdkafka does not honour the timeout in one case, a group
    coordinator that left the cluster's metadata: :data:`IDLE_CONNECTION_MS` is what ends
    that wait.)
    """
    commit = producer.commit_transaction

    def bounded(positions: Any, group_metadata: Any, timeout: float | None = None) -> None:
        commit(positions, group_metadata, timeout=seconds if timeout is None else timeout)

    producer.commit_transaction = bounded


class PartitionsLost(Exception):
    """The group took this member's partitions from it: its session ended without it (a
    node's loss longer than the session, or a paused process). Its run starts again."""


def restart_when_lost(app: Application) -> None:
    """End ``app``'s run when its partitions are lost, rather than only revoked.

    Quix drops a lost partition's state stores but keeps the checkpoint that holds their
    open transactions, so the next commit (or the next record already fetched) touches a
    closed store and the run dies on ``DbClosedError`` (seen in the node-loss test: a fraud
    app's session timed out while a node was down). A lost member's checkpoint is stale
    anyway, as is its open Kafka transaction: like Kafka Streams on a migrated task, the run
    ends here, :func:`movieflix_lab.streams.runner.run_app` starts it again, and the new
    run reads from the group's committed offsets (under exactly-once its new producer
    aborts the old transaction).
    """
    on_lost = app._on_lost  # private: the callback Quix subscribes with when the run starts

    def lost(consumer: Any, partitions: list[Any]) -> None:
        on_lost(consumer, partitions)
        if partitions:  # confluent-kafka raises it from the poll that ran the callback
            raise PartitionsLost(f"{len(partitions)} partition(s) lost: the group moved on")

    app._on_lost = lost  # type: ignore[method-assign,assignment]


def group_name(settings: Settings, name: str) -> str:
    """The consumer group of stream app ``name`` (all its instances share it)."""
    return f"{settings.stream_group_prefix}{name}"


def state_options(settings: Settings) -> RocksDBOptions:
    """RocksDB options of a stream app's stores: memory capped by ``stream_state_*_mb``."""
    return RocksDBOptions(
        block_cache_size=settings.stream_state_cache_mb * MB,
        write_buffer_size=settings.stream_state_write_buffer_mb * MB,
        max_write_buffer_number=2,
    )


def stream_application(
    settings: Settings,
    name: str,
    *,
    instance: str = "0",
    guarantee: Guarantee = "at-least-once",
    commit_interval: float | None = None,
    loglevel: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "WARNING",
    low_latency: bool = False,
    metrics: StreamMetrics | None = None,
) -> StreamApp:
    """The Quix ``Application`` of stream app ``name``.

    Consumer group ``<stream_group_prefix><name>`` (instances of one app share the
    partitions), state in ``data/state/<name>/<instance>`` (each instance needs its own:
    RocksDB locks its folder).

    ``low_latency`` (the fraud and recs apps): Quix's consumer otherwise waits up to a
    second to fill a batch of 10,000 messages per poll, and the broker up to 500 ms for a
    fetch to have data; alerts would wait for that at every hop (the IP repartition topic is
    a second one). Polls of 5 ms and fetches waiting at most 5 ms keep that wait short, for
    a little CPU polling while idle. The partition buffers (Quix aligns the input topics by
    event time through them) hold 1,000 messages: Quix feeds them with one ``consume`` of
    that many messages, then reads every assigned partition's watermarks and position, so
    100-message buffers made a catch-up pay that round per 100 records
    (``benchmarks/fraud_detection.py`` measures the fraud app's catch-up and its alert
    latency with them).

    ``metrics`` (:class:`~movieflix_lab.streams.metrics.StreamMetrics`) are hooked into the
    application: records processed, the consumer's statistics, checkpoints.
    """
    dead_letters = DeadLetters(settings, name)
    state_dir = settings.state_dir / name / instance
    state_dir.mkdir(parents=True, exist_ok=True)
    extra = dict(settings.kafka_client_config)
    interval = commit_interval or settings.stream_commit_interval_s
    producer_extra = stream_producer_config(settings)
    session_ms = int(settings.stream_session_timeout_s * 1000)
    # A broker answers one connection's requests in order, so each offset lookup Quix makes
    # while assigning partitions (committed offsets, then the watermarks of every input and
    # changelog partition, one call each) waits behind the consumer's pending fetch, which
    # waits up to fetch.wait.max.ms for data. librdkafka's 500 ms made an app that had
    # nothing to read wait that long once per store partition while starting (analytics: 24).
    extra = {"session.timeout.ms": str(session_ms),
             "heartbeat.interval.ms": str(min(3000, session_ms // 3)),
             "fetch.wait.max.ms": "5" if low_latency else "50", **extra}  # fmt: skip
    if metrics is not None:  # the consumer's lag per partition, from its statistics
        extra["statistics.interval.ms"] = str(int(settings.stream_metrics_interval_s * 1000))
        consumer_config: dict[str, Any] = {**extra, "stats_cb": metrics.on_statistics}
    else:
        consumer_config = dict(extra)
    if guarantee == "exactly-once":
        producer_extra.update(_transactional(settings, name, instance, interval))
    latency: dict[str, Any] = {}
    if low_latency:
        latency = {"consumer_poll_timeout": 0.005, "max_partition_buffer_size": 1000}
    topics = TopicManager(
        topic_admin=PromptTopicAdmin(quix_connection(settings), extra_config=producer_extra),
        consumer_group=group_name(settings, name),
    )
    # Topics Quix creates from no source topic (an output not in the catalog) replicate as
    # the catalog's do; changelogs and repartitions copy their source topics'.
    topics.default_replication_factor, topics.default_extra_config = replication(
        settings, cluster_brokers(settings)
    )
    app = Application(
        broker_address=quix_connection(settings),
        consumer_group=group_name(settings, name),
        topic_manager=topics,
        auto_offset_reset="earliest",
        commit_interval=interval,
        state_dir=state_dir,
        processing_guarantee=guarantee,
        on_consumer_error=dead_letters.on_consumer_error,
        on_processing_error=dead_letters.on_processing_error,
        consumer_extra_config=consumer_config,
        producer_extra_config=producer_extra,
        loglevel=loglevel,
        rocksdb_options=state_options(settings),
        on_message_processed=metrics.on_message_processed if metrics is not None else None,
        **latency,
    )
    # Private, no public hooks: the checkpoint's offsets and its (transactional) producer.
    dead_letters.store_offset = app._processing_context.store_offset
    dead_letters.internal = app._processing_context.producer
    restart_when_lost(app)
    if guarantee == "exactly-once":
        bound_commits(app._processing_context.producer,
                      settings.stream_transaction_commit_timeout_s)  # fmt: skip
    stream = StreamApp(
        name, app, dead_letters, LateEvents(settings), state_dir, instance, metrics=metrics
    )
    if metrics is not None:
        metrics.attach(stream)
    return stream
