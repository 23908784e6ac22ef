"""Running stream apps: one process per app, bounded or until Ctrl-C."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from quixstreams.checkpointing.exceptions import CheckpointProducerTimeout
from quixstreams.exceptions import PartitionAssignmentError
from quixstreams.kafka.exceptions import BaseKafkaException, KafkaBrokerUnavailableError
from quixstreams.sinks import BaseSink

from movieflix_lab.config import Settings
from movieflix_lab.kafka.catalog import all_topics, create_topics
from movieflix_lab.kafka.exceptions import TopicError
from movieflix_lab.kafka.lag import PartitionLag, consumer_lag, unread
from movieflix_lab.sinks.parquet import ParquetSink
from movieflix_lab.sinks.postgres import TABLES, PostgresSink
from movieflix_lab.streams import fraud, genre_watch_time, recs, search_volume
from movieflix_lab.streams.app import (
    Guarantee,
    PartitionsLost,
    SinkFactory,
    StreamApp,
    group_name,
    stream_application,
)
from movieflix_lab.streams.metrics import StreamMetrics

__all__ = [
    "APPS",
    "AnalyticsOptions",
    "RunSummary",
    "build_analytics",
    "build_fraud",
    "build_recs",
    "outstanding",
    "run_app",
    "wait_for_catch_up",
]

logger = logging.getLogger(__name__)

#: Window-result keys: one result per key (the Parquet reader and the PostgreSQL upsert use them).
GENRE_KEYS = ("genre", "window_start_ms", "window_ms", "hop_ms")
SEARCH_USER_KEYS = ("user_id", "window_start_ms", "window_ms")
SEARCH_TOTAL_KEYS = ("window_start_ms", "window_ms")


#: (dataset, output) → PostgreSQL table, when ``MOVIEFLIX_POSTGRES_DSN`` is set.
POSTGRES_TABLES = {
    ("genre_watch_time", "tumbling"): "genre_watch_time",
    ("genre_watch_time", "hopping"): "genre_watch_time",
    ("genre_watch_time", "rows"): "watch_history",
    ("search_volume", "per_user"): "search_volume_user",
    ("search_volume", "total"): "search_volume_total",
}


@dataclass(frozen=True)
class AnalyticsOptions:
    genre: genre_watch_time.GenreWatchTimeOptions = field(
        default_factory=genre_watch_time.GenreWatchTimeOptions
    )
    search: search_volume.SearchVolumeOptions = field(
        default_factory=search_volume.SearchVolumeOptions
    )
    parquet: bool = True


@dataclass
class RunSummary:
    app: str
    dead_letters: int
    late_events: Counter[str]
    rounds: int = 0
    outstanding: int = 0  # records the group had left to read when a bounded run stopped
    replays_dropped: int = 0  # re-keyed copies of records replayed after a crash


def build_analytics(
    stream: StreamApp, settings: Settings, options: AnalyticsOptions | None = None
) -> None:
    """Genre watch time and search volume in one application (one consumer group)."""
    options = options or AnalyticsOptions()
    create_topics(
        settings,
        specs=[
            *all_topics(),
            *genre_watch_time.output_topics(options.genre),
            *search_volume.output_topics(options.search),
        ],
    )
    processed = settings.processed_dir
    # Each PostgresSink creates its table in setup(), which Quix calls when the app starts.
    dsn = settings.postgres_dsn.get_secret_value() if settings.postgres_dsn else None

    def sinks(dataset: str) -> SinkFactory:
        def sink_for(output: str) -> list[BaseSink]:
            chosen: list[BaseSink] = []
            if options.parquet and output != "rows":
                chosen.append(ParquetSink(processed / dataset / output))
            table = POSTGRES_TABLES.get((dataset, output))
            if dsn and table:
                chosen.append(PostgresSink(dsn, TABLES[table]))
            return chosen

        return sink_for

    on_window = stream.metrics.window_closed if stream.metrics is not None else None
    genre_watch_time.build(
        stream.app,
        options.genre,
        late=stream.late,
        sink_for=sinks("genre_watch_time"),
        replays=stream.replays,
        on_window=on_window,
    )
    search_volume.build(
        stream.app,
        options.search,
        late=stream.late,
        sink_for=sinks("search_volume"),
        replays=stream.replays,
        on_window=on_window,
    )


def build_fraud(
    stream: StreamApp, settings: Settings, options: AnalyticsOptions | None = None
) -> Callable[[], None]:
    """The fraud app; returns what saves its model when the run ends."""
    create_topics(settings, specs=all_topics())
    source = group_name(settings, "fraud")
    options_ = fraud.options_from(settings, stream.instance, source)
    app = fraud.build(stream.app, options_, replays=stream.replays)
    return app.save


def build_recs(
    stream: StreamApp, settings: Settings, options: AnalyticsOptions | None = None
) -> None:
    """The recs app (its background refit, a job, comes in through ``run_app``'s
    ``on_start``)."""
    create_topics(settings, specs=all_topics())
    recs.build(
        stream.app,
        recs.RecsOptions(settings.recs_model_path, settings.recs_reload_interval_s),
    )


#: The topics each app reads (its repartition topics aside).
APP_INPUTS: dict[str, tuple[str, ...]] = {
    "analytics": ("watch-history", "search-events"),
    "fraud": fraud.FRAUD_INPUTS,
    "recs": ("watch-history",),
}

#: Apps that trade some throughput for latency (alerts and fresh recommendations should
#: not wait for a full batch).
LOW_LATENCY = frozenset({"fraud", "recs"})


def _commit_interval(settings: Settings, name: str) -> float:
    """The recs app publishes what a checkpoint touched when it commits: often enough."""
    interval = settings.stream_commit_interval_s
    return min(interval, recs.COMMIT_INTERVAL_S) if name == "recs" else interval


#: Each app's builder; what it returns (if anything) is called when a run ends.
APPS: dict[
    str, Callable[[StreamApp, Settings, AnalyticsOptions | None], Callable[[], None] | None]
] = {
    "analytics": build_analytics,
    "fraud": build_fraud,
    "recs": build_recs,
}


#: Lag (per partition) up to which :func:`outstanding` counts records exactly when asked.
EXACT_UP_TO = 1_000


def outstanding(
    settings: Settings,
    name: str,
    guarantee: Guarantee,
    *,
    inputs: tuple[str, ...] | None = None,
    exact: bool = False,
) -> int:
    """Records stream app ``name``'s consumer group has still to read; 0 when caught up.

    Counts every partition of the app's input topics (``inputs``, default
    :data:`APP_INPUTS`) and of its
    repartition topics, committed on or not: a group that has not committed yet has not
    caught up. Under exactly-once the app writes its repartition topics in transactions,
    and each transaction ends with a commit marker that takes an offset but is never
    delivered, so a caught-up partition of theirs lags by one. An aborted transaction
    leaves more such offsets (its records are never delivered either): with ``exact``,
    partitions still lagging by at most :data:`EXACT_UP_TO` are read from the committed
    offset and only what a read-committed consumer gets counts.
    """
    group = group_name(settings, name)
    read = set(inputs if inputs is not None else APP_INPUTS.get(name, ()))
    repartition = f"repartition__{group}--"

    def reads(topic: str) -> bool:
        return topic in read or topic.startswith(repartition)

    slack = 1 if guarantee == "exactly-once" else 0
    rows = [row for row in consumer_lag(settings, [group], also=reads) if reads(row.topic)]

    def left(row: PartitionLag) -> int:
        return max(0, row.lag - (slack if row.topic.startswith("repartition") else 0))

    if not exact:
        return sum(left(row) for row in rows)
    small = [row for row in rows if 0 < left(row) <= EXACT_UP_TO]
    return sum(left(row) for row in rows if left(row) > EXACT_UP_TO) + unread(settings, small)


def wait_for_catch_up(settings: Settings, app: str, timeout: float = 120.0) -> int:
    """Wait until ``app`` has read everything (repartition topics too); returns what is left.
    A retriable Kafka error while polling (a partition's leader not yet elected on a fresh
    broker) is another poll, until the deadline."""
    deadline = time.monotonic() + timeout
    left = -1
    while time.monotonic() < deadline:
        try:
            left = outstanding(settings, app, "at-least-once")
        except TopicError as exc:
            if not exc.retriable or time.monotonic() > deadline - 1:
                raise
            time.sleep(1.0)
            continue
        if left == 0:
            return 0
        time.sleep(1.0)
    return left


#: Kafka errors that say a broker or coordinator is away or moving, not that a request is
#: wrong: a run that failed on one of them is started again (``stream_max_restarts``).
_TRANSIENT_CODES = frozenset({
    KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
    KafkaError._MSG_TIMED_OUT, KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE, KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_ENOUGH_REPLICAS, KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.NETWORK_EXCEPTION, KafkaError._STATE,
    # The group moved on without this member (its coordinator was lost for longer than the
    # session): under exactly-once its open transaction is aborted, and it joins again.
    KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION,
    KafkaError.REBALANCE_IN_PROGRESS,
    # The transaction's coordinator moved mid-transaction: librdkafka calls the producer
    # fatally broken, and a new one (the restarted run's) takes the transactional id over.
    # "Fenced by a newer instance" comes too, from the coordinator's epoch bump; two
    # instances with one transactional id (a misconfiguration) still stop, after the
    # restarts run out.
    KafkaError.INVALID_TXN_STATE, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._FENCED,
    KafkaError.CONCURRENT_TRANSACTIONS,
})  # fmt: skip


#: A run that lasted this long before it failed starts the restart count anew.
RESTARTS_FORGOTTEN_S = 300.0


def transient(exc: BaseException) -> bool:
    """Whether a stream app's run failed on Kafka being away (this error or one it wraps).

    >>> from confluent_kafka import KafkaException
    >>> transient(KafkaException(KafkaError(KafkaError._ALL_BROKERS_DOWN)))
    True
    >>> transient(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)))
    False
    >>> transient(PartitionsLost("6 partition(s) lost"))
    True
    >>> transient(ValueError("a bug"))
    False
    """
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, PartitionAssignmentError | KafkaBrokerUnavailableError
                      | CheckpointProducerTimeout | PartitionsLost):  # fmt: skip
            return True
        error = getattr(seen, "error", None) if isinstance(seen, BaseKafkaException) else (
            seen.args[0] if isinstance(seen, KafkaException) and seen.args else None
        )  # fmt: skip
        if isinstance(error, KafkaError):
            return error.retriable() or error.code() in _TRANSIENT_CODES
        seen = seen.__cause__ or seen.__context__
    return False


def run_app(
    settings: Settings,
    name: str,
    *,
    timeout: float = 0.0,
    guarantee: Guarantee = "at-least-once",
    instance: str = "0",
    options: AnalyticsOptions | None = None,
    max_rounds: int = 6,
    on_start: Callable[[], Callable[[], None] | None] | None = None,
    metrics: StreamMetrics | None = None,
) -> RunSummary:
    """Run stream app ``name`` until Ctrl-C; with ``timeout``, until its group has caught up.

    Quix stops a run after ``timeout`` seconds without a new message, which also happens
    while the consumer waits (a rebalance, or another instance's open transaction holding
    the last stable offset). So a bounded run then checks the group's lag and runs again
    while records are left, up to ``max_rounds`` times; ``RunSummary.outstanding`` says
    what was left at the end.

    ``on_start`` runs beside the app (the recs app's background refit): it is called as
    each round starts, and what it returns is called when the round ends. ``metrics`` count
    across the rounds (:mod:`movieflix_lab.streams.metrics`).
    """
    if name not in APPS:
        raise KeyError(f"no stream app {name!r}; known: {', '.join(APPS)}")
    summary = RunSummary(name, 0, Counter())
    round_ = restarts = 0
    while round_ < max_rounds:
        round_ += 1
        stream = stream_application(
            settings, name, instance=instance, guarantee=guarantee,
            low_latency=name in LOW_LATENCY, commit_interval=_commit_interval(settings, name),
            metrics=metrics,
        )  # fmt: skip
        on_stop = APPS[name](stream, settings, options)
        beside = on_start() if on_start is not None else None
        failed: BaseException | None = None
        started = time.monotonic()
        try:
            stream.app.run(timeout=timeout, collect=False) if timeout else stream.app.run()
        except Exception as exc:
            if not transient(exc) or restarts >= settings.stream_max_restarts:
                raise
            failed = exc
        finally:
            stream.late.flush()
            if on_stop is not None:
                on_stop()
            if beside is not None:
                beside()
        summary.dead_letters += stream.dead_letters.count
        summary.replays_dropped += stream.replays.dropped
        summary.late_events.update(stream.late.by_window)
        if failed is not None:
            if time.monotonic() - started > RESTARTS_FORGOTTEN_S:
                restarts = 0  # a long-lived app has its budget per outage, not per life
            restarts += 1
            round_ -= 1  # the round starts again; it did not end
            logger.warning(
                "%s: the run failed on Kafka (%s): starting it again in %d s (%d of %d)",
                name, failed, 2 * restarts, restarts, settings.stream_max_restarts,
            )  # fmt: skip
            time.sleep(2 * restarts)
            continue
        summary.rounds = round_
        if not timeout:
            break
        summary.outstanding = outstanding(settings, name, guarantee, exact=True)
        if summary.outstanding == 0:
            break
        logger.info("%s: %d records left to read; running again", name, summary.outstanding)
    return summary
