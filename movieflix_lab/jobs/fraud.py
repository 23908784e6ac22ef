"""``movieflix-lab eval fraud``: a labelled scenario through the real fraud pipeline, scored.

By default: the local broker (started if needed), a seeded simulation with every fraud
scenario and both hard negatives, produced to Kafka at a steady rate of background traffic
(5,000 events/s), and the fraud stream app in a child process under a consumer group of
its own that starts at the current end of the topics (so earlier data, and other fraud
apps, take no part; its model checkpoints go to a scratch folder, not ``models/fraud``).
Alerts are read back from ``fraud-signals`` as they arrive and scored against the labels
with :func:`movieflix_lab.fraud.evaluate.score_alerts`; the latency of each detected incident
is from its decisive event being produced to its first alert being read.

The River score's ranking — of account takeovers (ROC-AUC, :func:`login_scores`) and of every
fraud scenario (ROC-AUC, PR-AUC and the precision-recall curve,
:func:`~movieflix_lab.fraud.calibrate.ranking`) — comes from the same model code replayed over
the scenario's events in event-time order: the stream app publishes alerts, not every score.
The model's alert bars were chosen on a validation simulation of another seed
(:data:`~movieflix_lab.fraud.calibrate.VALIDATION_SEED`), which this evaluation refuses.

``from_topic`` scores what a live run wrote to ``fraud-signals`` against a simulation's
labels instead (no latency: the produce times are not known).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from movieflix_lab.config import Settings
from movieflix_lab.events.codec import to_record
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.fraud.calibrate import VALIDATION_SEED, Calibration, calibrate, model_quality
from movieflix_lab.fraud.evaluate import FraudScore, login_scores, roc_auc, score_alerts
from movieflix_lab.fraud.model import ModelConfig, OnlineFraudModel
from movieflix_lab.jobs.processes import stream_process
from movieflix_lab.jobs.results import Goal, jsonable
from movieflix_lab.kafka.broker import broker_session
from movieflix_lab.kafka.catalog import FRAUD_SIGNALS, create_topics
from movieflix_lab.kafka.groups import delete_group, start_group_at_end, wait_for_members
from movieflix_lab.kafka.tail import TopicTail
from movieflix_lab.simulate import (
    SimulationConfig,
    Simulator,
    TimedSink,
    latest_labels,
    read_labels,
    run_simulation,
)
from movieflix_lab.simulate.runner import ProgressCallback

__all__ = [
    "GOALS",
    "FraudEvaluation",
    "FraudScenario",
    "ScenarioRun",
    "calibrate_bars",
    "evaluate_from_topic",
    "run_fraud_eval",
    "validation_config",
]

Say = Callable[[str], None]
logger = logging.getLogger(__name__)

#: The goals of the fraud detectors: (metric, comparison, bound).
GOALS = (
    ("overall precision (every alert)", ">=", 0.95),
    ("rules precision (binge bots, credential stuffing)", ">=", 0.99),
    ("recall on the rule scenarios (binge, stuffing, takeover)", ">=", 0.99),
    ("River precision (its alerts)", ">=", 0.8),
    ("River recall on the scenarios only it can find", ">=", 0.8),
    ("River alerts on ordinary users, share of active users per day", "<=", 0.002),
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
                "quiet_takeover": 4.0,
                "account_sharing": 4.0,
                "slow_stuffing": 2.0,
                "scraper": 4.0,
                "human_binger": 4.0,
                "shared_ip": 4.0,
                "new_device": 4.0,
            }
        )
    )
    #: Background traffic: events produced per second of wall time.
    rate: float = 5000.0

    def __post_init__(self) -> None:
        if self.seed == VALIDATION_SEED:
            raise MovieflixError(
                f"seed {VALIDATION_SEED} is the validation simulation the model's alert bars "
                "were chosen on: evaluate on another seed"
            )

    def config(self, start: datetime | None = None) -> SimulationConfig:
        config = SimulationConfig(
            seed=self.seed,
            users=self.users,
            minutes=self.minutes,
            activity=self.activity,
            incident_rates=dict(self.incident_rates),
        )
        return config if start is None else replace(config, start=start)


def _clean_up(settings: Settings, group: str, work: Path) -> None:
    """Remove what the evaluation's consumer group left: its internal topics, offsets, state."""
    import shutil

    delete_group(settings, group)
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


@dataclass(frozen=True)
class ScenarioRun:
    """How a labelled scenario went through the pipeline (``eval fraud`` without
    ``--from-topic``)."""

    scenario: dict[str, Any]
    events: int
    events_per_second: float
    max_lag_during_run: int
    #: (seconds into the run, the fraud app's lag), every 2 s while producing.
    lag_samples: list[tuple[float, int]]
    left_unread: int
    #: The River model after the run: events learned, score drifts detected.
    model: dict[str, float]
    roc_auc_detail: dict[str, Any]
    #: The River score's ranking per fraud scenario (ROC-AUC, PR-AUC, PR curve).
    ranking: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class FraudEvaluation:
    """The fraud detectors' alerts scored against a simulation's labels."""

    score: FraudScore
    labels: str
    consumer_group: str
    roc_auc_account_takeover: float | None = None
    #: The model's alerts: precision, recall on its scenarios, ordinary users alerted.
    model_quality: dict[str, Any] = field(default_factory=dict)
    #: The scenario's run through broker, simulator and app (None when scored from the topic).
    run: ScenarioRun | None = None
    goals: list[Goal] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """One flat JSON object: the score's fields, the run's, the goals."""
        run = jsonable(self.run) if self.run is not None else {}
        return {
            **jsonable(self.score),
            "roc_auc_account_takeover": self.roc_auc_account_takeover,
            "model_quality": jsonable(self.model_quality),
            **run,
            "labels": self.labels,
            "consumer_group": self.consumer_group,
            "goals": jsonable(self.goals),
        }


def _goals(score: FraudScore, roc_auc: float | None, model: dict[str, Any]) -> list[Goal]:
    from movieflix_lab.simulate.traffic import RULE_SCENARIOS

    rules = [score.per_scenario.get(s, {}) for s in ("binge_bot", "credential_stuffing")]
    found = [score.per_scenario[s] for s in RULE_SCENARIOS if s in score.per_scenario]
    detected = sum(row["detected"] for row in found)
    incidents = sum(row["incidents"] for row in found)
    values = [
        score.precision,
        min((r.get("precision") or 0.0) for r in rules),
        detected / incidents if incidents else None,
        model.get("precision"),
        model.get("recall"),
        model.get("ordinary_rate_per_day"),
        roc_auc,
        score.latency_p99_ms,
    ]
    return [
        Goal.check(name, value, op, bound)
        for (name, op, bound), value in zip(GOALS, values, strict=True)
    ]


def validation_config(
    seed: int = VALIDATION_SEED, users: int = 3000, minutes: float = 480.0
) -> SimulationConfig:
    """The validation simulation the model's bars are chosen on: every scenario, the
    model's at twice the default rates."""
    rates = {
        "binge_bot": 1.0, "credential_stuffing": 1.0, "account_takeover": 1.0,
        "quiet_takeover": 2.0, "account_sharing": 2.0, "slow_stuffing": 1.0, "scraper": 2.0,
        "human_binger": 3.0, "shared_ip": 3.0, "new_device": 3.0,
    }  # fmt: skip
    return SimulationConfig(
        seed=seed, users=users, minutes=minutes, activity=4.0, incident_rates=rates
    )


def calibrate_bars(config: SimulationConfig | None = None) -> Calibration:
    """``movieflix-lab train fraud``: the model's bars chosen on the validation simulation
    (:func:`movieflix_lab.fraud.calibrate.calibrate`), in memory."""
    config = config or validation_config()
    simulator = Simulator(config)
    events = [to_record(e) for e in simulator.events()]  # labels complete once consumed
    incidents = [i.as_row() for i in simulator.incidents]
    return calibrate(events, incidents, validation=config.as_dict())


def _replay(
    config: SimulationConfig, incidents: list[dict[str, Any]], model: ModelConfig
) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The model's scores over the scenario, replayed in memory: its ranking per scenario."""
    from movieflix_lab.fraud.calibrate import ranking, score_log

    log = score_log((to_record(e) for e in Simulator(config).events()), model)
    return log, ranking(log, incidents)


def run_fraud_eval(
    settings: Settings,
    scenario: FraudScenario | None = None,
    *,
    say: Say = lambda message: None,
    progress: ProgressCallback | None = None,
) -> FraudEvaluation:
    """Run ``scenario`` through broker, simulator and fraud app; return it scored."""
    from movieflix_lab.streams.fraud import FRAUD_INPUTS

    scenario = scenario or FraudScenario()
    with broker_session(settings):
        return _run_fraud_eval(settings, scenario, say, progress, FRAUD_INPUTS)


def _run_fraud_eval(
    settings: Settings,
    scenario: FraudScenario,
    say: Say,
    progress: ProgressCallback | None,
    inputs: tuple[str, ...],
) -> FraudEvaluation:
    from movieflix_lab.streams.runner import outstanding, wait_for_catch_up

    run = time.strftime("%Y%m%dT%H%M%S")
    prefix = f"{settings.stream_group_prefix}eval-{run}-"
    scoped = settings.model_copy(update={"stream_group_prefix": prefix})
    group = f"{prefix}fraud"
    work = settings.data_dir / "eval" / f"fraud-{run}"
    work.mkdir(parents=True, exist_ok=True)
    create_topics(settings)
    start_group_at_end(settings, group, inputs)
    tail = TopicTail(
        settings,
        FRAUD_SIGNALS.name,
        start="end",
        accept=lambda alert: alert.get("source") == group,
    )
    config = scenario.config()
    labels = settings.raw_dir / "simulations" / f"eval-fraud-{run}"
    log = work / "fraud-app.log"
    with stream_process(
        settings, "fraud", log=log, stream_group_prefix=prefix, fraud_model_dir=str(work / "model")
    ) as app:
        say(f"fraud app started (consumer group {group}); waiting for its partitions")
        wait_for_members(settings, group, timeout=120, what="the fraud app")
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
    incidents = read_labels(labels)
    first_read: dict[str, float] = {}
    for r in received:  # an alert's revisions: its latency counts from the first
        first_read.setdefault(r.value["alert_id"], r.received_ms)
    say("replaying the scenario through the same model: the River score's ranking")
    model = OnlineFraudModel.load_or_new(work / "model")
    log, ranked = _replay(config, incidents, model.config)
    alerts = [r.value for r in received]
    score = score_alerts(alerts, incidents, produced_ms=sink.produced_ms,
                         received_ms=first_read, active_users=len(log.users))  # fmt: skip
    quality = model_quality(alerts, incidents, len(log.users), log.days)
    auc = _ato_auc(config, incidents, model.config)
    run_ = ScenarioRun(
        scenario={**config.as_dict(), "rate": scenario.rate},
        events=result.events,
        events_per_second=round(result.events_per_second, 1),
        max_lag_during_run=max((lag for _, lag in lags), default=0),
        lag_samples=lags,
        left_unread=left,
        model={
            "events_learned": model.learned,
            "ip_attempts_learned": model.ip_learned,
            "drifts_detected": model.drifts,
            "alert_score": model.config.alert_score,
            "ip_alert_score": model.config.ip_alert_score,
        },
        roc_auc_detail=auc,
        ranking=ranked,
    )
    _clean_up(settings, group, work)
    return FraudEvaluation(score, str(labels), group, auc["roc_auc"], quality, run_,
                           _goals(score, auc["roc_auc"], quality))  # fmt: skip


def evaluate_from_topic(
    settings: Settings,
    labels: Path | None = None,
    source: str | None = None,
    *,
    span_ms: tuple[int, int] | None = None,
) -> FraudEvaluation:
    """Score the alerts on ``fraud-signals`` against a simulation's labels.

    Only the alerts of consumer group ``source`` count (default: the live fraud app's), and
    with ``span_ms`` only those whose decisive event lies in it (the simulation's time span:
    the topic may hold alerts of other runs).
    """
    folder = labels or latest_labels(settings)
    incidents = read_labels(folder)
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
    users = _active_users(folder)
    score = score_alerts(alerts, incidents, active_users=users)
    days = _simulated_days(folder)
    quality = model_quality(alerts, incidents, users or 0, days) if users else {}
    return FraudEvaluation(score, str(folder), source, model_quality=quality,
                           goals=_goals(score, None, quality))  # fmt: skip


def _active_users(folder: Path) -> int | None:
    """The simulation's users (its ``users.parquet``): a topic holds no record of which were
    active, so this counts every one (a lower rate per user than active users would give)."""
    import polars as pl

    path = folder / "users.parquet"
    if not path.exists():
        return None
    users = pl.read_parquet(path)
    return users.height


def _simulated_days(folder: Path) -> float:
    import json

    manifest = folder / "manifest.json"
    if not manifest.exists():
        return 0.0
    return float(json.loads(manifest.read_text()).get("simulated_minutes", 0.0)) / 1440
