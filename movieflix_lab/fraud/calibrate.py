"""The model's alert bars, chosen on a validation simulation; its score's ranking, measured.

The River model alerts when a score reaches a fixed bar (:class:`~movieflix_lab.fraud.model.
ModelConfig`'s ``alert_score`` and ``ip_alert_score``). The bars are chosen here, on a
*validation* simulation with its own seed (:data:`VALIDATION_SEED`; the simulation is run by
:func:`movieflix_lab.jobs.fraud.calibrate_bars`), never on the run that measures them
(``eval fraud`` refuses that seed):

1. :func:`score_log` runs the detector in memory over the validation events, in event-time
   order, with the model's alerts off, and keeps every score after the warm-up (progressive
   validation: each event scored by a model that has not learned it);
2. :func:`model_alerts` replays the alerts a bar would raise (one per entity per cooldown, no
   alert on a failed login), exactly as :class:`~movieflix_lab.fraud.detector.FraudDetector`
   raises them;
3. :func:`calibrate` tries every bar on a grid and scores each one's alerts against the
   validation labels. Of the bars whose alerts have precision ≥ ``min_precision`` and alert on at
   most ``max_ordinary_rate`` of active ordinary users per simulated day (stricter than the
   goals, :data:`movieflix_lab.jobs.fraud.GOALS`), it keeps the middle of the widest run with the
   best recall (:func:`_plateau`), so a test run has margin on both sides.

:func:`ranking` measures the score itself, per scenario: each (entity, hour) of the run is
scored by its highest score; the hours an incident of the scenario spans on its entity are
positives, the hours of entities in no fraud incident negatives; ROC-AUC, PR-AUC (average
precision) and the precision-recall curve follow.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from movieflix_lab.fraud.alerts import alert_id
from movieflix_lab.fraud.detector import FraudDetector
from movieflix_lab.fraud.evaluate import EXPECTED, _ms, roc_auc, score_alerts
from movieflix_lab.fraud.model import ModelConfig, OnlineFraudModel
from movieflix_lab.fraud.rules import RuleConfig, event_time_ms, normalise_ip

__all__ = [
    "MODEL_DETECTORS",
    "MODEL_SCENARIOS",
    "VALIDATION_SEED",
    "Calibration",
    "ScoreLog",
    "average_precision",
    "calibrate",
    "model_alerts",
    "model_quality",
    "ranking",
    "score_log",
]

#: The seed of the validation simulation the bars are chosen on.
VALIDATION_SEED = 11
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MODEL_DETECTORS = ("river_anomaly", "river_ip_anomaly")
#: The scenarios only the model is meant for (no rule among their detectors).
MODEL_SCENARIOS = tuple(s for s, meant in EXPECTED.items() if set(meant) <= set(MODEL_DETECTORS))


@dataclass
class ScoreLog:
    """Every model score of a run after the warm-up, in processing order."""

    #: (entity kind, entity id, event time ms, event id, score, may alert)
    rows: list[tuple[str, str, int, str, float, bool]] = field(default_factory=list)
    #: Users seen (any relevant event), and the run's span of event time.
    users: set[str] = field(default_factory=set)
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def days(self) -> float:
        if self.first_ms is None or self.last_ms is None:
            return 0.0
        return max(self.last_ms - self.first_ms, 1) / DAY_MS


def score_log(events: Iterable[Mapping[str, Any]], model: ModelConfig | None = None,
              rules: RuleConfig | None = None) -> ScoreLog:  # fmt: skip
    """Run the detector over ``events`` (records, event-time order) with the model's alerts
    off; every score after the model's warm-up."""
    config = replace(model or ModelConfig(), alert_score=2.0, ip_alert_score=2.0)
    detector = FraudDetector(rules=rules or RuleConfig(), model=OnlineFraudModel(config))
    trees = detector.model
    assert trees is not None
    log = ScoreLog()
    for event in events:
        record = dict(event)
        if not detector.relevant(record):
            continue
        ts = event_time_ms(record)
        user = record["user_id"]
        log.users.add(user)
        log.first_ms = ts if log.first_ms is None else min(log.first_ms, ts)
        log.last_ms = ts if log.last_ms is None else max(log.last_ms, ts)
        warm = trees.learned >= config.warmup_events
        detector.user_step(detector.users.setdefault(user, {}), record, ts, 0)
        if warm:
            attempt = record["event_type"] == "login" and not record.get("success")
            log.rows.append(("user", user, ts, str(record["event_id"]), trees.last_score,
                             not attempt))  # fmt: skip
        if record["event_type"] == "login":
            ip = normalise_ip(str(record["ip"]))
            warm = trees.ip_learned >= config.ip_warmup_events
            detector.ip_step(detector.ips.setdefault(ip, {}), record, ts, 0)
            if warm:
                log.rows.append(("ip", ip, ts, str(record["event_id"]), trees.last_score, True))
    return log


def model_alerts(log: ScoreLog, user_bar: float, ip_bar: float,
                 cooldown_ms: int) -> list[dict[str, Any]]:  # fmt: skip
    """The model's alerts at these bars, as the detector raises them (records enough for
    :func:`~movieflix_lab.fraud.evaluate.score_alerts`)."""
    until: dict[tuple[str, str], int] = {}
    alerts = []
    for kind, entity, ts, event_id, score, eligible in log.rows:
        bar = ip_bar if kind == "ip" else user_bar
        if not eligible or score < bar or ts < until.get((kind, entity), -1):
            continue
        until[(kind, entity)] = ts + cooldown_ms
        detector = "river_ip_anomaly" if kind == "ip" else "river_anomaly"
        alerts.append({"detector": detector, "entity_kind": kind, "entity_id": entity,
                       "event_time_ms": ts, "decisive_event_id": event_id, "score": score,
                       "alert_id": alert_id(detector, entity, ts)})  # fmt: skip
    return alerts


def model_quality(alerts: Sequence[Mapping[str, Any]], incidents: Sequence[Mapping[str, Any]],
                  active_users: int, days: float) -> dict[str, Any]:  # fmt: skip
    """The model's alerts against the labels: precision (of its alerts), recall on the
    scenarios only the model can find, and its alerts on ordinary users (in no incident)
    as a share of active users per simulated day."""
    mine = [a for a in alerts if a["detector"] in MODEL_DETECTORS]
    score = score_alerts(mine, incidents)
    true = sum(row["true_alerts"] for row in score.per_detector.values())
    involved = {u for i in incidents for u in [i["entity_id"], *(i.get("user_ids") or [])]}
    ordinary = {a["entity_id"] for a in mine
                if a["entity_kind"] == "user" and a["entity_id"] not in involved}  # fmt: skip
    recall = {s: score.per_scenario[s]["recall"] for s in MODEL_SCENARIOS
              if s in score.per_scenario}  # fmt: skip
    found = sum(score.per_scenario[s]["detected"] for s in recall)
    total = sum(score.per_scenario[s]["incidents"] for s in recall)
    return {
        "alerts": len(mine),
        "precision": true / len(mine) if mine else None,
        "recall": found / total if total else None,
        "recall_per_scenario": recall,
        "ordinary_users_alerted": len(ordinary),
        "ordinary_rate_per_day": len(ordinary) / max(active_users, 1) / max(days, 1e-9),
    }


@dataclass(frozen=True)
class Calibration:
    """The bars chosen on a validation run, and how they did there."""

    alert_score: float
    ip_alert_score: float
    validation: dict[str, Any]
    quality: dict[str, Any]
    min_precision: float
    max_ordinary_rate: float
    #: Each user bar tried (with the chosen IP bar): alerts, precision, recall, ordinary rate.
    tried: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")
        return path


def _grid() -> list[float]:
    return [round(0.3 + i * 0.0025, 4) for i in range(281)]


def _plateau(
    grid: list[float],
    quality: Any,
    good: Any,
) -> tuple[float, list[dict[str, Any]]]:
    """The middle of the widest run of grid bars that meet the bounds at the best recall
    (within 0.02): as far from where ordinary traffic starts to alert as from where the
    incidents stop being found (the grid's top when no bar meets the bounds)."""
    tried, runs, current = [], [], []
    results = [(bar, quality(bar)) for bar in grid]
    best = max(((q["recall"] or 0.0) for _, q in results if good(q)), default=None)
    for bar, q in results:
        tried.append({"bar": bar, **{k: q[k] for k in (
            "alerts", "precision", "recall", "ordinary_rate_per_day")}})  # fmt: skip
        if best is not None and good(q) and (q["recall"] or 0.0) >= best - 0.02:
            current.append(bar)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    if not runs:
        return grid[-1], tried
    widest = max(runs, key=len)
    return widest[len(widest) // 2], tried


def calibrate(
    events: Iterable[Mapping[str, Any]],
    incidents: Sequence[Mapping[str, Any]],
    *,
    validation: Mapping[str, Any] | None = None,
    model: ModelConfig | None = None,
    rules: RuleConfig | None = None,
    min_precision: float = 0.9,
    max_ordinary_rate: float = 0.001,
) -> Calibration:
    """Choose the model's bars on a validation simulation: its ``events`` (records, in
    event-time order) and labelled ``incidents``; ``validation`` describes it (its config).

    Each bar (the IP bar first, then the user bar with it) is the middle of the widest run of
    grid bars whose alerts meet ``min_precision`` and ``max_ordinary_rate`` on the validation
    labels with the best recall (:func:`_plateau`): HalfSpaceTrees' scores of ordinary
    traffic sit in clusters whose place moves by a tenth from one seed to another, so the
    lowest bar that passes on validation would have no margin on another run.
    """
    rules = rules or RuleConfig()
    log = score_log(events, model, rules)
    cooldown = rules.ms("cooldown")
    users, days = len(log.users), log.days

    def quality(user_bar: float, ip_bar: float) -> dict[str, Any]:
        alerts = model_alerts(log, user_bar, ip_bar, cooldown)
        return model_quality(alerts, incidents, users, days)

    def good(q: dict[str, Any]) -> bool:
        return (q["precision"] or 0.0) >= min_precision and (
            q["ordinary_rate_per_day"] <= max_ordinary_rate
        )

    grid = _grid()
    ip_bar, _ = _plateau(grid, lambda bar: quality(2.0, bar), good)
    user_bar, tried = _plateau(grid, lambda bar: quality(bar, ip_bar), good)
    return Calibration(
        alert_score=user_bar,
        ip_alert_score=ip_bar,
        validation={
            **(validation or {}),
            "events_scored": len(log.rows),
            "active_users": users,
            "simulated_days": round(days, 4),
        },
        quality=quality(user_bar, ip_bar),
        min_precision=min_precision,
        max_ordinary_rate=max_ordinary_rate,
        tried=tried,
    )


def average_precision(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """PR-AUC as average precision: the mean, over the positives ranked by score, of the
    precision at each one's rank (ties resolved pessimistically).

    >>> average_precision([0.9, 0.8], [0.1]), average_precision([0.5], [0.9])
    (1.0, 0.5)
    """
    if not positives:
        return None
    ranked = sorted([(s, 0) for s in negatives] + [(s, 1) for s in positives],
                    key=lambda item: (-item[0], item[1]))  # fmt: skip
    hits, total = 0, 0.0
    for rank, (_, label) in enumerate(ranked, start=1):
        if label:
            hits += 1
            total += hits / rank
    return total / len(positives)


def _curve(positives: Sequence[float], negatives: Sequence[float],
           points: int = 40) -> list[dict[str, float]]:  # fmt: skip
    """Precision and recall at up to ``points`` bars (the positives' own scores)."""
    bars = sorted(set(positives), reverse=True)
    step = max(1, len(bars) // points)
    out = []
    for bar in bars[::step] + ([bars[-1]] if bars else []):
        tp = sum(1 for s in positives if s >= bar)
        fp = sum(1 for s in negatives if s >= bar)
        out.append({"bar": round(bar, 4), "recall": tp / len(positives),
                    "precision": tp / (tp + fp)})  # fmt: skip
    return out


def ranking(log: ScoreLog, incidents: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per fraud scenario, how the model's score ranks its (entity, hour)s among ordinary
    ones: ROC-AUC, PR-AUC and the precision-recall curve (see the module's docstring)."""
    best: dict[tuple[str, str, int], float] = defaultdict(float)
    for kind, entity, ts, _, score, _ in log.rows:
        key = (kind, entity, ts // HOUR_MS)
        best[key] = max(best[key], score)
    fraud = [i for i in incidents if i["is_fraud"]]
    involved = {e for i in fraud for e in [i["entity_id"], *(i.get("user_ids") or [])]}
    negatives = {
        kind: [s for (k, e, _), s in best.items() if k == kind and e not in involved]
        for kind in ("user", "ip")
    }
    out: dict[str, dict[str, Any]] = {}
    for scenario in sorted({i["scenario"] for i in fraud}):
        mine = [i for i in fraud if i["scenario"] == scenario and i.get("decisive_event_id")]
        if not mine:
            continue
        kind = mine[0]["entity_kind"]
        positives = []
        for incident in mine:
            start = _hour(incident["start"])
            end = _hour(incident.get("end") or incident["start"])
            positives.append(max((best.get((kind, incident["entity_id"], h), 0.0)
                                  for h in range(start, end + 1)), default=0.0))  # fmt: skip
        negs = negatives[kind]
        out[scenario] = {
            "entity": kind,
            "positives": len(positives),
            "negatives": len(negs),
            "roc_auc": roc_auc(positives, negs),
            "pr_auc": average_precision(positives, negs),
            "pr_curve": _curve(positives, negs),
        }
    return out


def _hour(value: Any) -> int:
    ms = _ms(value)
    assert ms is not None
    return ms // HOUR_MS
