"""Scoring fraud alerts against a simulation's labels (a library function for notebooks).

An alert *matches* an incident when it is about the incident's entity (its IP or user, or
one of the accounts it involved as a suspect: for credential stuffing only the accounts it
got into, its targets are not suspects) and its decisive event falls between the incident's
start (less 5 minutes) and 12 hours after its end (an account caught up in an incident stays
suspect). Alerts are first deduplicated on ``alert_id``, keeping each one's highest
``revision`` (its exact decisive event); its latency counts from its first arrival.

- precision: alerts matching a fraud incident / all alerts (per detector too);
- recall: fraud incidents with at least one matching alert / fraud incidents whose decisive
  event was emitted (per scenario too);
- false alerts on hard negatives: alerts matching a human binger or a shared IP and no fraud;
- latency, when the caller knows when events were produced and alerts read (wall clock):
  the pipeline's (the event that raised an alert → the alert) and each incident's (its
  decisive event → the first alert of a detector meant for its scenario).

:func:`login_scores` and :func:`roc_auc` measure the River score's ranking of account
takeovers: each successful login scored by the highest score of its user's events in the
15 minutes from it; positives are takeover logins, negatives every login not part of a
fraud incident.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from movieflix_lab.fraud.detector import FraudDetector
from movieflix_lab.fraud.model import OnlineFraudModel
from movieflix_lab.fraud.rules import event_time_ms

__all__ = ["FraudScore", "login_scores", "percentile", "roc_auc", "score_alerts"]

BEFORE_MS = 5 * 60_000
AFTER_MS = 12 * 60 * 60_000
#: The detectors meant for each scenario (the rules' goals are scored on these).
EXPECTED = {
    "binge_bot": ("binge_bot",),
    "credential_stuffing": ("credential_stuffing",),
    "account_takeover": ("new_login_activity", "impossible_travel", "river_anomaly"),
    "quiet_takeover": ("river_anomaly",),
    "account_sharing": ("river_anomaly",),
    "slow_stuffing": ("river_ip_anomaly",),
    "scraper": ("river_anomaly",),
}


def _ms(value: Any) -> int | None:
    if value is None or value != value:  # None, NaN or NaT
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if hasattr(value, "to_pydatetime"):
        return int(value.to_pydatetime().timestamp() * 1000)
    if isinstance(value, str):
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    return int(value)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank).

    >>> percentile([1, 2, 3, 4], 50), percentile([], 99)
    (2, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _prf(tp_alerts: int, alerts: int, found: int, incidents: int) -> dict[str, Any]:
    precision = tp_alerts / alerts if alerts else None
    recall = found / incidents if incidents else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall
        else None
    )
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "alerts": alerts,
        "true_alerts": tp_alerts,
        "incidents": incidents,
        "detected": found,
    }


@dataclass
class FraudScore:
    precision: float | None
    recall: float | None
    f1: float | None
    #: Pipeline latency: the event that raised an alert produced → the alert read.
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    #: Incident latency: the label's decisive event produced → the first alert of a detector
    #: meant for the scenario read (for a takeover this includes waiting for its evidence).
    incident_latency_p50_ms: float | None
    incident_latency_p99_ms: float | None
    alerts: int
    per_scenario: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_detector: dict[str, dict[str, Any]] = field(default_factory=dict)
    hard_negative_false_alerts: dict[str, int] = field(default_factory=dict)
    background_false_alerts: int = 0
    #: Alerts matching no fraud incident per 1,000 active users (``active_users`` given).
    false_alerts_per_1k_users: float | None = None
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    #: Each alert's pipeline latency, in the order the alerts were read.
    latencies: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _matches(alert: Mapping[str, Any], incident: Mapping[str, Any]) -> bool:
    entity = alert["entity_id"]
    suspects = incident.get("suspect_ids")
    if entity != incident["entity_id"] and entity not in (
        incident["user_ids"] if suspects is None else suspects
    ):
        return False
    start, end = _ms(incident["start"]), _ms(incident.get("end")) or _ms(incident["start"])
    assert start is not None and end is not None
    return start - BEFORE_MS <= int(alert["event_time_ms"]) <= end + AFTER_MS


def score_alerts(
    alerts: Iterable[Mapping[str, Any]],
    incidents: Iterable[Mapping[str, Any]],
    *,
    produced_ms: Mapping[str, float] | None = None,
    received_ms: Mapping[str, float] | None = None,
    active_users: int | None = None,
) -> FraudScore:
    """Score ``alerts`` (records from ``fraud-signals``) against labelled ``incidents``.

    ``produced_ms`` (event id → wall ms when it was produced) and ``received_ms`` (alert id →
    wall ms when the alert was first read back) give the latency; ``active_users`` the false
    alerts per 1,000 users.
    """
    newest: dict[str, Mapping[str, Any]] = {}
    for a in alerts:
        kept = newest.get(a["alert_id"])
        if kept is None or a.get("revision", 0) >= kept.get("revision", 0):
            newest[a["alert_id"]] = a
    unique = list(newest.values())
    labelled = [
        {**i, "user_ids": list(i["user_ids"]) if i.get("user_ids") is not None else [],
         "suspect_ids": list(i["suspect_ids"]) if i.get("suspect_ids") is not None else None}
        for i in incidents
    ]  # fmt: skip
    fraud = [i for i in labelled if i["is_fraud"]]
    negatives = [i for i in labelled if not i["is_fraud"]]
    by_detector: dict[str, list[bool]] = defaultdict(list)
    found: dict[str, set[str]] = defaultdict(set)  # incident id → detectors that caught it
    first_alert: dict[str, float] = {}
    hard: dict[str, int] = defaultdict(int)
    background = 0
    unmatched = []
    for alert in unique:
        hits = [i for i in fraud if _matches(alert, i)]
        by_detector[alert["detector"]].append(bool(hits))
        for incident in hits:
            found[incident["incident_id"]].add(alert["detector"])
            expected = alert["detector"] in EXPECTED.get(incident["scenario"], ())
            if expected and received_ms and alert["alert_id"] in received_ms:
                seen = received_ms[alert["alert_id"]]
                first_alert[incident["incident_id"]] = min(
                    first_alert.get(incident["incident_id"], seen), seen
                )
        if not hits:
            unmatched.append(alert)
            negative = next((i for i in negatives if _matches(alert, i)), None)
            if negative is not None:
                hard[negative["scenario"]] += 1
            else:
                background += 1
    scorable = [i for i in fraud if i.get("decisive_event_id")]
    per_scenario = {}
    for scenario in sorted({i["scenario"] for i in scorable}):
        mine = [i for i in scorable if i["scenario"] == scenario]
        meant = EXPECTED.get(scenario, ())
        alerts_for = [ok for d in meant for ok in by_detector.get(d, [])]
        detected = sum(1 for i in mine if found.get(i["incident_id"], set()) & set(meant))
        per_scenario[scenario] = {
            **_prf(sum(alerts_for), len(alerts_for), detected, len(mine)),
            "detected_by_any": sum(1 for i in mine if i["incident_id"] in found),
            "detectors": sorted({d for i in mine for d in found.get(i["incident_id"], ())}),
        }
    latencies: list[float] = []
    by_scenario: dict[str, list[float]] = defaultdict(list)
    pipeline: list[float] = []
    timeline: list[tuple[float, float, str]] = []
    #: Per detector: the alert's own decisive event produced → the alert first read.
    decisive_latency: dict[str, list[float]] = defaultdict(list)
    if produced_ms and received_ms:
        for alert in unique:
            produced = produced_ms.get(str(alert.get("trigger_event_id")))
            read = received_ms.get(alert["alert_id"])
            if produced is not None and read is not None:
                pipeline.append(max(0.0, read - produced))
                timeline.append((read, pipeline[-1], alert["detector"]))
            decided = produced_ms.get(str(alert.get("decisive_event_id")))
            if decided is not None and read is not None:
                decisive_latency[alert["detector"]].append(max(0.0, read - decided))
        for incident in scorable:
            produced = produced_ms.get(str(incident["decisive_event_id"]))
            alerted = first_alert.get(incident["incident_id"])
            if produced is not None and alerted is not None:
                latencies.append(max(0.0, alerted - produced))
                by_scenario[incident["scenario"]].append(latencies[-1])
    for scenario, values in by_scenario.items():
        per_scenario[scenario]["latency_p50_ms"] = percentile(values, 50)
        per_scenario[scenario]["latency_p99_ms"] = percentile(values, 99)
    overall = _prf(
        sum(ok for oks in by_detector.values() for ok in oks),
        len(unique),
        sum(1 for i in scorable if i["incident_id"] in found),
        len(scorable),
    )
    return FraudScore(
        precision=overall["precision"],
        recall=overall["recall"],
        f1=overall["f1"],
        latency_p50_ms=percentile(pipeline, 50),
        latency_p99_ms=percentile(pipeline, 99),
        incident_latency_p50_ms=percentile(latencies, 50),
        incident_latency_p99_ms=percentile(latencies, 99),
        alerts=len(unique),
        per_scenario=per_scenario,
        per_detector={
            d: _prf(sum(oks), len(oks), 0, 0)
            | {
                "incidents": None,
                "detected": None,
                "recall": None,
                "f1": None,
                "latency_p50_ms": percentile(decisive_latency.get(d, []), 50),
                "latency_p99_ms": percentile(decisive_latency.get(d, []), 99),
            }
            for d, oks in sorted(by_detector.items())
        },
        hard_negative_false_alerts=dict(hard),
        background_false_alerts=background,
        false_alerts_per_1k_users=(
            round(len(unmatched) / active_users * 1000, 3) if active_users else None
        ),
        unmatched=[dict(a) for a in unmatched[:20]],
        latencies=[
            {"received_ms": seen, "latency_ms": round(ms, 1), "detector": d}
            for seen, ms, d in sorted(timeline)
        ],
    )


def login_scores(
    events: Iterable[Mapping[str, Any]],
    model: OnlineFraudModel,
    *,
    horizon_ms: int = 15 * 60_000,
) -> list[dict[str, Any]]:
    """Run ``model`` over ``events`` (progressive validation); score each successful login.

    A login's score is the highest score of its user's events from the login up to
    ``horizon_ms`` later (or the user's next login), so it reflects what followed it.
    """
    memories: dict[str, dict[str, Any]] = {}
    open_login: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for event in events:
        if not FraudDetector.relevant(dict(event)):
            continue
        user = event["user_id"]
        record = dict(event)
        ts = event_time_ms(record)
        score = model.process(memories.setdefault(user, {}), record, ts)
        current = open_login.get(user)
        if current is not None and ts - current["ts"] > horizon_ms:
            current = open_login.pop(user)
        if event["event_type"] == "login" and event.get("success"):
            current = {
                "event_id": str(event["event_id"]),
                "user_id": user,
                "ts": ts,
                "score": score,
                "learned_before": model.learned - 1,
            }
            open_login[user] = current
            rows.append(current)
        elif current is not None:
            current["score"] = max(current["score"], score)
    return rows


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """The probability a positive outranks a negative (ties count half).

    >>> roc_auc([0.9, 0.8], [0.1, 0.8])
    0.875
    """
    if not positives or not negatives:
        return None
    ranked = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (i + j + 1) / 2
        rank_sum += average_rank * sum(1 for _, label in ranked[i:j] if label)
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
