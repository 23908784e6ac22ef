"""``movieflix-lab eval fraud``: a labelled scenario through the real fraud pipeline, scored.

By default: the local broker (started if needed), a seeded simulation with every fraud
scenario and both hard negatives, produced to Kafka at a steady rate of background traffic
(5,000 events/s), and the fraud stream app in a child process under a consumer group of
its own that starts at the current end of the topics (so earlier data, and other fraud
apps, take no part; its model checkpoints go to a scratch folder, not ``models/fraud``).
Alerts are read back from ``fraud-signals`` as they arrive and scored against the labels
with :func:`movieflix_lab.fraud.evaluate.score_alerts`; the latency of each detected incident
is from its decisive event being produced to its first alert being read.

The River score's ranking of account takeovers (ROC-AUC) comes from the same model code
replayed over the scenario's events in event-time order (:func:`login_scores`): the stream
app publishes alerts, not every score.

``from_topic`` scores what a live run wrote to ``fraud-signals`` against a simulation's
labels instead (no latency: the produce times are not known).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import polars as pl
from confluent_kafka import TopicPartition

from movieflix_lab.config import Settings, child_environment
from movieflix_lab.events.codec import to_record
from movieflix_lab.events.models import EventBase
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.fraud.evaluate import login_scores, roc_auc, score_alerts
from movieflix_lab.fraud.model import ModelConfig, OnlineFraudModel
from movieflix_lab.kafka.catalog import FRAUD_SIGNALS, create_topics
from movieflix_lab.kafka.client import admin_client, consumer, watermarks
from movieflix_lab.kafka.tail import TopicTail
from movieflix_lab.simulate import KafkaSink, SimulationConfig, Simulator, run_simulation

__all__ = [
    "GOALS",
    "FraudScenario",
    "TimedSink",
    "evaluate_from_topic",
    "run_fraud_eval",
    "start_group_at_end",
    "wait_for_members",
]

Say = Callable[[str], None]
logger = logging.getLogger(__name__)

#: The issue's goals: (metric, comparison, value).
GOALS = (
    ("rules precision (binge bots, credential stuffing)", ">=", 0.99),
    ("rules recall (binge bots, credential stuffing)", ">=", 0.99),
    ("account-takeover ROC-AUC of the River score", ">=", 0.9),
    ("alert latency p99 ms", "<", 1000.0),
)


@dataclass(frozen=True)
class FraudScenario:
    seed: int = 7
    users: int = 5000
    minutes: float = 360.0
    activity: float = 4.0
    incident_rates: MappingProxyType[str, float] = field(
        default_factory=lambda: MappingProxyType(
            {
                "binge_bot": 4.0,
                "credential_stuffing": 4.0,
                "account_takeover": 4.0,
                "human_binger": 4.0,
                "shared_ip": 4.0,
            }
        )
    )
    #: Background traffic: events produced per second of wall time.
    rate: float = 5000.0

    def config(self, start: datetime | None = None) -> SimulationConfig:
        config = SimulationConfig(
            seed=self.seed,
            users=self.users,
            minutes=self.minutes,
            activity=self.activity,
            incident_rates=dict(self.incident_rates),
        )
        return config if start is None else replace(config, start=start)


class TimedSink(KafkaSink):
    """The Kafka sink, noting when each event was handed to the producer."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.produced_ms: dict[str, float] = {}

    def write(self, event: EventBase) -> None:
        super().write(event)
        self.produced_ms[str(event.event_id)] = time.time() * 1000


def start_group_at_end(settings: Settings, group: str, topics: tuple[str, ...]) -> None:
    """Commit ``group``'s offsets at the current end of ``topics``: it reads only what follows."""
    client = consumer(settings, group)
    try:
        metadata = client.list_topics(timeout=10)
        offsets = []
        for topic in topics:
            for p in metadata.topics[topic].partitions:
                high = watermarks(client, topic, p)[1]
                offsets.append(TopicPartition(topic, p, high))
        client.commit(offsets=offsets, asynchronous=False)
    finally:
        client.close()


def wait_for_members(settings: Settings, group: str, timeout: float) -> None:
    admin = admin_client(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = admin.describe_consumer_groups([group])[group].result(10)
        assigned = sum(len(m.assignment.topic_partitions) for m in described.members)
        if str(described.state).endswith("STABLE") and assigned:
            return
        time.sleep(0.5)
    raise MovieflixError(f"the fraud app did not join consumer group {group} within {timeout} s")


@contextmanager
def _fraud_app(
    settings: Settings, prefix: str, model_dir: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = child_environment(settings, stream_group_prefix=prefix, fraud_model_dir=str(model_dir))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "movieflix_lab", "stream", "fraud"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            yield process
        finally:
            from movieflix_lab.jobs.demo import _interrupt

            _interrupt(process, timeout=60)


def _clean_up(settings: Settings, group: str, work: Path) -> None:
    """Remove what the evaluation's consumer group left: its internal topics, offsets, state."""
    import shutil

    admin = admin_client(settings)
    internal = [
        name
        for name in admin.list_topics(timeout=10).topics
        if name.startswith((f"changelog__{group}--", f"repartition__{group}--"))
    ]
    futures = list(admin.delete_topics(internal).values()) if internal else []
    futures += list(admin.delete_consumer_groups([group]).values())
    for future in futures:
        try:
            future.result(30)
        except Exception as exc:  # leave it: the report matters more than the tidying
            logger.warning("could not remove %s's leftovers: %s", group, exc)
    shutil.rmtree(settings.state_dir / "fraud" / "0" / group, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


def _ato_auc(
    config: SimulationConfig, incidents: list[dict[str, Any]], model: ModelConfig
) -> dict[str, Any]:
    events = (to_record(e) for e in Simulator(config).events())
    rows = login_scores(events, OnlineFraudModel(model))
    takeovers = {
        str(i["decisive_event_id"])
        for i in incidents
        if i["scenario"] == "account_takeover" and i["decisive_event_id"]
    }
    involved = {
        u
        for i in incidents
        if i["is_fraud"] and i["scenario"] != "account_takeover"
        for u in i["user_ids"]
    }
    positives = [r["score"] for r in rows if r["event_id"] in takeovers]
    negatives = [
        r["score"] for r in rows if r["event_id"] not in takeovers and r["user_id"] not in involved
    ]
    return {
        "roc_auc": roc_auc(positives, negatives),
        "positives": len(positives),
        "negatives": len(negatives),
    }


def _goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    rules = [report["per_scenario"].get(s, {}) for s in ("binge_bot", "credential_stuffing")]
    values = [
        min((r.get("precision") or 0.0) for r in rules) if rules else None,
        min((r.get("recall") or 0.0) for r in rules) if rules else None,
        report.get("roc_auc_account_takeover"),
        report.get("latency_p99_ms"),
    ]
    out = []
    for (name, op, target), value in zip(GOALS, values, strict=True):
        met = value is not None and (value >= target if op == ">=" else value < target)
        out.append({"goal": f"{name} {op} {target}", "value": value, "met": met})
    return out


def run_fraud_eval(
    settings: Settings,
    scenario: FraudScenario | None = None,
    *,
    say: Say = lambda message: None,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` through broker, simulator and fraud app; return the scored report."""
    from movieflix_lab.kafka.broker import LocalBroker
    from movieflix_lab.streams.fraud import FRAUD_INPUTS
    from movieflix_lab.streams.runner import outstanding, wait_for_catch_up

    scenario = scenario or FraudScenario()
    broker = LocalBroker(settings) if settings.uses_local_broker else None
    started_broker = False
    if broker is not None:
        status = broker.start()
        started_broker = not status.already_running
    run = time.strftime("%Y%m%dT%H%M%S")
    prefix = f"{settings.stream_group_prefix}eval-{run}-"
    scoped = settings.model_copy(update={"stream_group_prefix": prefix})
    group = f"{prefix}fraud"
    work = settings.data_dir / "eval" / f"fraud-{run}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        create_topics(settings)
        start_group_at_end(settings, group, FRAUD_INPUTS)
        tail = TopicTail(
            settings,
            FRAUD_SIGNALS.name,
            start="end",
            accept=lambda alert: alert.get("source") == group,
        )
        config = scenario.config()
        labels = settings.raw_dir / "simulations" / f"eval-fraud-{run}"
        with _fraud_app(settings, prefix, work / "model", work / "fraud-app.log") as app:
            say(f"fraud app started (consumer group {group}); waiting for its partitions")
            wait_for_members(settings, group, timeout=120)
            sink = TimedSink(settings)
            lags: list[tuple[float, int]] = []
            produce_start = time.monotonic()
            stop_sampling = threading.Event()

            def sample_lag() -> None:  # off the producing loop: it must keep its pace
                while not stop_sampling.wait(2.0):
                    lag = outstanding(scoped, "fraud", "at-least-once")
                    lags.append((round(time.monotonic() - produce_start, 1), lag))

            sampler = threading.Thread(target=sample_lag, daemon=True)
            sampler.start()

            def watch(events: int, minutes: float) -> None:
                if progress is not None:
                    progress(events, minutes)

            say(f"producing the scenario at {scenario.rate:,.0f} events/s")
            try:
                result = run_simulation(
                    config, sink, rate=scenario.rate, labels_dir=labels, progress=watch
                )
            finally:
                stop_sampling.set()
                sampler.join(10)
            left = wait_for_catch_up(scoped, "fraud", timeout=300)
            time.sleep(2.0)  # alerts of the last events in flight
            if app.poll() is not None:
                raise MovieflixError(
                    f"the fraud app exited with code {app.returncode}; see {work / 'fraud-app.log'}"
                )
        tail.stop()
        received = tail.snapshot()
        incidents = pl.read_parquet(labels / "labels.parquet").to_dicts()
        score = score_alerts(
            [r.value for r in received],
            incidents,
            produced_ms=sink.produced_ms,
            received_ms={r.value["alert_id"]: r.received_ms for r in received},
        )
        say("scoring the River model's account-takeover ranking (same model, replayed)")
        model = OnlineFraudModel.load_or_new(work / "model")
        auc = _ato_auc(config, incidents, model.config)
        report = {
            **score.as_dict(),
            "roc_auc_account_takeover": auc["roc_auc"],
            "roc_auc_detail": auc,
            "scenario": {**config.as_dict(), "rate": scenario.rate},
            "events": result.events,
            "events_per_second": round(result.events_per_second, 1),
            "max_lag_during_run": max((lag for _, lag in lags), default=0),
            "lag_samples": lags,
            "left_unread": left,
            "consumer_group": group,
            "model": {"events_learned": model.learned, "drifts_detected": model.drifts},
            "labels": str(labels),
        }
        report["goals"] = _goals(report)
        _clean_up(settings, group, work)
        return report
    finally:
        if started_broker and broker is not None:
            broker.stop()


def latest_labels(settings: Settings) -> Path:
    runs = sorted(
        (settings.raw_dir / "simulations").glob("*/labels.parquet"),
        key=lambda path: path.stat().st_mtime,
    )
    if not runs:
        raise MovieflixError("no simulation labels under data/raw/simulations: run a simulation")
    return runs[-1].parent


def evaluate_from_topic(
    settings: Settings,
    labels: Path | None = None,
    source: str | None = None,
    *,
    span_ms: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Score the alerts on ``fraud-signals`` against a simulation's labels.

    Only the alerts of consumer group ``source`` count (default: the live fraud app's), and
    with ``span_ms`` only those whose decisive event lies in it (the simulation's time span:
    the topic may hold alerts of other runs).
    """
    folder = labels or latest_labels(settings)
    if not (folder / "labels.parquet").exists():
        raise MovieflixError(f"no labels.parquet in {folder}")
    incidents = pl.read_parquet(folder / "labels.parquet").to_dicts()
    from movieflix_lab.streams.app import group_name

    source = source or group_name(settings, "fraud")
    tail = TopicTail(
        settings,
        FRAUD_SIGNALS.name,
        start="beginning",
        accept=lambda alert: alert.get("source") == source,
    )
    try:
        if not tail.caught_up(timeout=120):
            raise MovieflixError(f"could not read {FRAUD_SIGNALS.name} to its end within 120 s")
    finally:
        tail.stop()
    alerts = [r.value for r in tail.snapshot()]
    if span_ms is not None:
        alerts = [a for a in alerts if span_ms[0] <= a.get("event_time_ms", -1) <= span_ms[1]]
    score = score_alerts(alerts, incidents)
    report = {
        **score.as_dict(),
        "roc_auc_account_takeover": None,
        "labels": str(folder),
        "consumer_group": source,
    }
    report["goals"] = _goals(report)
    return report
