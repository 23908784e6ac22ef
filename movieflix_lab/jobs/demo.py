"""The main job end to end, as ``movieflix-lab demo`` / ``make demo`` runs it.

Starts the local broker (unless a cluster is configured), creates the topics, starts a local
PostgreSQL server for the stream app's sink (unless one is configured), the analytics, fraud
and recs stream apps and the serve app in their own processes, sends seeded traffic through
the gateway, scores the fraud alerts against the labels, trains the recommender on the
run's watch-history (the serve app picks the version up), shows a summary, then serves
until Ctrl-C (or returns at once with ``exit_after``).
Everything it started is stopped on the way out; a broker that was already running is left
running.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx

from movieflix_lab.config import Settings
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.fraud.evaluate import FraudScore
from movieflix_lab.jobs.processes import gateway_process, stream_process
from movieflix_lab.jobs.recs import RecsEvaluation, TrainedModel
from movieflix_lab.lab.reconcile import Reconciliation
from movieflix_lab.simulate.runner import ProgressCallback
from movieflix_lab.simulate.traffic import FRAUD_SCENARIOS, HARD_NEGATIVES
from movieflix_lab.streams.metrics import MetricsSnapshot, free_metrics_port, scrape

logger = logging.getLogger(__name__)

__all__ = ["DemoOptions", "DemoResult", "ReportOutcome", "ServedRecs", "run_demo"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 42
    users: int = 2000
    minutes: float = 120.0
    #: Sessions per user per day, scaled: compressed, busy traffic for a short demo.
    activity: float = 20.0
    #: Incidents per simulated hour: enough of each scenario for its precision and recall
    #: to mean something in two hours.
    incident_rates: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType(
            {**dict.fromkeys(FRAUD_SCENARIOS, 3.0), **dict.fromkeys(HARD_NEGATIVES, 3.0)}
        )
    )
    exit_after: bool = False


@dataclass(frozen=True)
class ServedRecs:
    """The model the demo trained on its watch-history, and the serve app serving it."""

    model: TrainedModel
    #: ``GET example_url`` as the serve app answered it with the new version.
    example: dict[str, Any]
    example_url: str
    #: The recsys-eval report's evaluation on a seeded history beside the run (the run's own
    #: viewings are too few per user to hold any out unless it runs for hours): ALS and its
    #: tuned baselines, from the report's key numbers.
    quality: RecsEvaluation | None = None


@dataclass(frozen=True)
class ReportOutcome:
    status: str
    folder: str
    duration_s: float


@dataclass(frozen=True)
class WireSizes:
    """The run's wire format, and value bytes per event of a sample of each event topic:
    as written, and the same records in each format (``events/avro.py``)."""

    written: str
    #: topic → (events sampled, mean bytes as JSON, mean bytes as Avro single-object).
    topics: dict[str, tuple[int, float, float]]

    @property
    def ratio(self) -> float:
        """Avro's bytes over JSON's, over every sampled event."""
        n = sum(c for c, _, _ in self.topics.values())
        json_bytes = sum(c * j for c, j, _ in self.topics.values())
        avro_bytes = sum(c * a for c, _, a in self.topics.values())
        return avro_bytes / json_bytes if n else float("nan")


def wire_sizes(settings: Settings, sample: int = 2_000) -> WireSizes:
    """Read up to ``sample`` events of each event topic and weigh each in both formats (the
    values as they are, and the same records in the other format)."""
    import orjson
    from confluent_kafka import TopicPartition

    from movieflix_lab.events.avro import TOPIC_EVENT_TYPES, encode_avro, is_avro
    from movieflix_lab.events.codec import decode_record
    from movieflix_lab.kafka.client import consumer

    topics: dict[str, tuple[int, float, float]] = {}
    reader = consumer(settings)
    try:
        for topic in TOPIC_EVENT_TYPES:
            per = max(1, sample // settings.topic_partitions)
            reader.assign([TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)])
            seen, json_bytes, avro_bytes, quiet = 0, 0, 0, 0
            while seen < sample and quiet < 3:
                messages = [m for m in reader.consume(per, timeout=0.5) if m.error() is None]
                quiet = 0 if messages else quiet + 1
                for message in messages[: sample - seen]:
                    value = message.value()
                    try:
                        record = decode_record(value)
                    except ValueError:  # a dead letter's business, not a size
                        continue
                    avro = value if is_avro(value) else encode_avro(record)
                    plain = orjson.dumps(record) if is_avro(value) else value
                    seen, json_bytes, avro_bytes = (
                        seen + 1,
                        json_bytes + len(plain),
                        avro_bytes + len(avro),
                    )
            if seen:
                topics[topic] = (seen, json_bytes / seen, avro_bytes / seen)
    finally:
        reader.close()
    return WireSizes(settings.wire_format, topics)


@dataclass
class DemoResult:
    gateway_url: str
    events: int
    incidents: int
    labels_dir: Path
    topic_messages: dict[str, int]
    #: Closed genre watch-time windows (tumbling) the analytics app wrote to Parquet.
    genre_windows: int = 0
    #: The genre with the longest mean watch time in the latest closed window.
    top_genre: str | None = None
    analytics_lag: int = 0
    #: Rows per PostgreSQL table, when the PostgreSQL sink ran.
    postgres_rows: dict[str, int] = field(default_factory=dict)
    #: The fraud app's alerts on this run's traffic, scored against its labels.
    fraud: FraudScore | None = None
    #: The River model's alerts on the run: precision, recall on its scenarios, ordinary
    #: users alerted (:func:`movieflix_lab.fraud.calibrate.model_quality`).
    fraud_model: dict[str, Any] = field(default_factory=dict)
    fraud_lag: int = 0
    #: The recommendation model trained on this run's watch-history, and a served example.
    recs: ServedRecs | None = None
    recs_lag: int = 0
    #: Each consumer group's status as Burrow judges it over a short watch, once the apps
    #: caught up (``movieflix-lab lag --watch``): ``movieflix-fraud OK``.
    consumer_status: list[str] = field(default_factory=list)
    #: Each windowed output against the batch computation over the same offsets.
    reconciliation: Reconciliation = field(default_factory=Reconciliation)
    #: Each stream app's ``/metrics`` as scraped at the end of the run, by app.
    stream_metrics: dict[str, MetricsSnapshot] = field(default_factory=dict)
    #: How the run's events went over the wire (``MOVIEFLIX_WIRE_FORMAT``), and what the same
    #: events weigh in each format, per event topic (a sample of each).
    wire: WireSizes | None = None
    #: Every report run on this run's data, by name.
    reports: dict[str, ReportOutcome] = field(default_factory=dict)
    reports_index: str = ""

    @property
    def reconciled(self) -> bool:
        return self.reconciliation.ok


@contextmanager
def postgres_sink(settings: Settings, say: Say) -> Iterator[str | None]:
    """The PostgreSQL DSN for the stream app: the configured one, else a local server of the
    demo's own (data/postgres), else None (the sink is then off, and the demo says why)."""
    from movieflix_lab.sinks.local_postgres import LocalPostgres

    if settings.postgres_dsn is not None:
        say("PostgreSQL sink: the configured MOVIEFLIX_POSTGRES_DSN")
        yield settings.postgres_dsn.get_secret_value()
        return
    server = LocalPostgres(settings.data_dir / "postgres", settings.local_postgres_port)
    try:
        dsn = server.start()
    except MovieflixError as exc:
        say(f"PostgreSQL sink off: {exc}")
        yield None
        return
    say(f"PostgreSQL sink: a local server at {dsn}")
    try:
        yield dsn
    finally:
        server.stop()


def _postgres_rows(dsn: str) -> dict[str, int]:
    import psycopg

    from movieflix_lab.sinks.postgres import TABLES

    with psycopg.connect(dsn) as connection:
        return {
            name: connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # type: ignore[index]
            for name in TABLES
        }


def _summarise_windows(settings: Settings, result: DemoResult) -> None:
    from movieflix_lab.sinks.parquet import read_results
    from movieflix_lab.streams.runner import GENRE_KEYS

    windows = read_results(settings.processed_dir / "genre_watch_time" / "tumbling", GENRE_KEYS)
    result.genre_windows = windows.height
    if windows.height:
        latest = windows.filter(windows["window_start_ms"] == windows["window_start_ms"].max())
        best = latest.sort("mean_seconds", descending=True).row(0, named=True)
        result.top_genre = f"{best['genre']} ({best['mean_seconds'] / 60:.0f} min on average)"


def _reconcile(settings: Settings, result: DemoResult, *, wait_s: float = 30.0) -> None:
    """Every windowed output of the analytics app against the batch computation.

    The app has caught up; its last windows close once its partitions are idle and reach
    the Parquet sink at its next checkpoint, so a window still missing is checked again for
    a little while before it counts as a difference.
    """
    from movieflix_lab.lab.reconcile import reconcile_analytics
    from movieflix_lab.streams.app import group_name

    deadline = time.monotonic() + wait_s
    group = group_name(settings, "analytics")
    sources: dict[tuple[str, str], Any] = {}  # the app has caught up: read them once
    while True:
        check = reconcile_analytics(settings, group=group, sources=sources)
        if check.ok or time.monotonic() > deadline:
            break
        time.sleep(3)
    result.reconciliation = check


def _score_fraud(settings: Settings, labels: Path, config: Any) -> Any:
    """The fraud app's alerts on this run's traffic, against the run's labels (a
    :class:`~movieflix_lab.jobs.fraud.FraudEvaluation`)."""
    from movieflix_lab.jobs.fraud import evaluate_from_topic

    time.sleep(1.0)  # the last alerts in flight
    start = int(config.start.timestamp() * 1000)
    end = start + int(config.minutes * 60_000) + 3_600_000
    return evaluate_from_topic(settings, labels, span_ms=(start, end))


#: The seeded history the demo scores the recommender on (as the recsys-eval report does).
QUALITY_USERS, QUALITY_DAYS = 600, 10.0


def _train_recs(settings: Settings, labels: Path, url: str, say: Say) -> ServedRecs:
    """Train on the run's watch-history; wait until the serve app serves the new version."""
    from movieflix_lab.jobs.recs import train_recs

    trained = train_recs(settings, movies_path=labels / "movies.parquet")
    say(f"recommendation model {trained.version} trained on {trained.interactions:,} "
        f"viewings in {trained.fit_seconds:.2f} s")  # fmt: skip
    users = sorted(trained.sample_users) or ["u000001"]
    key = settings.read_api_key
    read_headers = {"x-api-key": key.get_secret_value()} if key is not None else {}
    example: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/v1/recommendations/{users[0]}?n=3", timeout=5,
                             headers=read_headers)  # fmt: skip
        if response.status_code == 200 and response.json()["model_version"] == trained.version:
            example = response.json()
            break
        time.sleep(0.5)
    if not example:
        raise MovieflixError(f"the serve app did not pick up model {trained.version} in 30 s")
    return ServedRecs(trained, example, f"{url}/v1/recommendations/{users[0]}")


def _recs_quality(
    reports: dict[str, ReportOutcome], config: Any, say: Say
) -> RecsEvaluation | None:
    """The recsys-eval report's evaluation (ALS and its tuned baselines on the seeded history
    beside the run), from its manifest's key numbers: one evaluation, shown in both places."""
    outcome = reports.get("recsys-eval")
    if outcome is None or outcome.status != "succeeded":
        return None
    manifest = json.loads((Path(outcome.folder) / "manifest.json").read_text())
    data = {"kind": "simulated", "seed": config.seed, "users": QUALITY_USERS,
            "days": QUALITY_DAYS, "report": outcome.folder}  # fmt: skip
    scores = dict(manifest["key_numbers"])
    say(f"recommendation quality (recsys-eval, a seeded {QUALITY_DAYS:g}-day history of "
        f"{QUALITY_USERS} users): NDCG@10 ALS {scores['ndcg@10']:.3f}, best baseline "
        f"{scores['best_baseline']} {scores['best_baseline_ndcg@10']:.3f}")  # fmt: skip
    return RecsEvaluation(scores, data)


def _run_reports(
    settings: Settings, labels: Path, config: Any, say: Say
) -> dict[str, ReportOutcome]:
    """Every notebook, as a report on this run's data (the simulated ones: small)."""
    from movieflix_lab.reports import run_report

    start = config.start
    end = start + timedelta(minutes=config.minutes)
    plan = {
        "explore-windows": {"source": "topic", "start": start.isoformat(), "end": end.isoformat()},
        "fraud-review": {
            "source": "topic",
            "labels": str(labels),
            "start": start.isoformat(),
            "end": (end + timedelta(hours=1)).isoformat(),
        },
        "recsys-eval": {
            "seed": str(config.seed),
            "users": str(QUALITY_USERS),
            "days": str(QUALITY_DAYS),
        },
        "pipeline-health": {"samples": "3"},
        "stream-vs-batch": {},
    }
    done = {}
    for name, parameters in plan.items():
        run = run_report(settings, name, parameters)
        done[name] = ReportOutcome(run.status, str(run.folder), run.manifest["duration_s"])
        say(f"report {name}: {run.status} ({run.manifest['duration_s']:.0f} s) → {run.folder}")
    return done


def _scrape_metrics(settings: Settings, ports: dict[str, int]) -> dict[str, MetricsSnapshot]:
    """Each app's ``/metrics`` once it shows no lag, or as it is after a short wait.

    A caught-up app still reads now and then: the fraud app's quiet partitions announce a
    watermark marker a minute (to its repartition topic), which lags until its next
    checkpoint commits it and the next statistics (every ``stream_metrics_interval_s``)
    say so. So an app is scraped again, a second apart, for up to a checkpoint interval
    and two statistics intervals. An app that does not answer is left out."""
    key = settings.metrics_api_key.get_secret_value() if settings.metrics_api_key else None
    wait = settings.stream_commit_interval_s + 2 * settings.stream_metrics_interval_s + 5
    deadline = time.monotonic() + wait
    scraped: dict[str, MetricsSnapshot] = {}
    for app, port in ports.items():
        url = f"http://{settings.stream_metrics_host}:{port}/metrics"
        while True:
            try:
                scraped[app] = scrape(url, key=key)
            except httpx.HTTPError as exc:
                logger.warning("could not scrape %s: %s", url, exc)
                break
            if scraped[app].lag == 0 or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    return scraped


#: The demo's watch of its groups (`lag --watch --window 8 --interval 2`): about 8 s.
STATUS_WINDOW_S, STATUS_INTERVAL_S = 8.0, 2.0


def _consumer_status(settings: Settings, say: Say) -> list[str]:
    """Each group's status over a short watch, as ``lag --watch`` gives it."""
    from movieflix_lab.kafka.lag import watch_lag

    watch = watch_lag(settings, window=STATUS_WINDOW_S, interval=STATUS_INTERVAL_S)
    described = [g.describe() for g in watch.groups]
    say(f"consumer status over {STATUS_WINDOW_S:g} s (Burrow's rules): " + "; ".join(described))
    return described


def run_demo(
    settings: Settings,
    options: DemoOptions,
    *,
    say: Say,
    summary: Callable[[DemoResult], None],
    progress: ProgressCallback | None = None,
    wait_for_interrupt: Callable[[], None] | None = None,
) -> DemoResult:
    from movieflix_lab.kafka.broker import broker_session
    from movieflix_lab.kafka.catalog import create_topics, describe_topics
    from movieflix_lab.simulate import GatewaySink, SimulationConfig, run_simulation
    from movieflix_lab.streams.runner import wait_for_catch_up

    with broker_session(settings, say=say, who="the demo"):
        reports = create_topics(settings)
        created = sum(r.status == "created" for r in reports)
        say(f"topics: {len(reports)} in the catalog, {created} created")

        ports = {app: free_metrics_port(settings, app) for app in ("analytics", "fraud", "recs")}
        with (
            postgres_sink(settings, say) as dsn,
            stream_process(settings, postgres_dsn=dsn, metrics_port=ports["analytics"]),
            stream_process(settings, "fraud", metrics_port=ports["fraud"]),
            stream_process(settings, "recs", metrics_port=ports["recs"]),
            gateway_process(settings) as url,
        ):
            say("analytics stream app started (genre watch time, search volume)")
            say("fraud stream app started (rules + River model → fraud-signals)")
            say("recs stream app started (fresh user vectors → recs.user-updates)")
            say(f"gateway ready at {url}")
            config = SimulationConfig(
                seed=options.seed,
                users=options.users,
                minutes=options.minutes,
                activity=options.activity,
                incident_rates=options.incident_rates,
            )
            labels = settings.raw_dir / "simulations" / f"demo-seed{options.seed}"
            simulated = run_simulation(
                config,
                GatewaySink(url, api_key=settings.api_key_value),
                labels_dir=labels,
                progress=progress,
            )
            say(
                f"simulated {simulated.events:,} events through the gateway "
                f"({simulated.events_per_second:,.0f}/s), {simulated.incidents} labelled "
                f"incidents in {labels}"
            )
            lag = wait_for_catch_up(settings, "analytics")
            counts = {d.name: d.messages for d in describe_topics(settings) if d.in_catalog}
            result = DemoResult(url, simulated.events, simulated.incidents, labels, counts)
            result.analytics_lag = lag
            result.fraud_lag = wait_for_catch_up(settings, "fraud")
            evaluation = _score_fraud(settings, labels, config)
            result.fraud, result.fraud_model = evaluation.score, evaluation.model_quality
            result.recs_lag = wait_for_catch_up(settings, "recs")
            result.consumer_status = _consumer_status(settings, say)
            result.recs = _train_recs(settings, labels, url, say)
            result.reports = _run_reports(settings, labels, config, say)
            result.recs = replace(result.recs, quality=_recs_quality(result.reports, config, say))
            result.reports_index = str(settings.reports_dir / "index.html")
            _summarise_windows(settings, result)
            _reconcile(settings, result)
            if dsn is not None:
                time.sleep(settings.stream_commit_interval_s + 1)  # the sink writes at checkpoints
                result.postgres_rows = _postgres_rows(dsn)
            result.stream_metrics = _scrape_metrics(settings, ports)
            result.wire = wire_sizes(settings)
            summary(result)
            if not options.exit_after and wait_for_interrupt is not None:
                say(f"serving at {url} (docs at {url}/docs); Ctrl-C to stop")
                wait_for_interrupt()
        return result
