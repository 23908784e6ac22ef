"""Scoring alerts against labels, and the detectors on a labelled scenario (no broker)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from movieflix_lab.events.codec import to_record
from movieflix_lab.fraud import FraudDetector, login_scores, roc_auc, score_alerts
from movieflix_lab.fraud.model import OnlineFraudModel
from movieflix_lab.simulate import SimulationConfig, Simulator

T = datetime(2026, 11, 20, 12, tzinfo=UTC)
RATES = {"binge_bot": 5.0, "credential_stuffing": 5.0, "account_takeover": 5.0,
         "human_binger": 6.0, "shared_ip": 6.0}  # fmt: skip


def _incident(iid: str, scenario: str, entity: str, fraud: bool = True, **extra) -> dict:  # type: ignore[no-untyped-def]
    return {"incident_id": iid, "scenario": scenario, "is_fraud": fraud, "entity_id": entity,
            "user_ids": [entity], "start": T, "end": T + timedelta(minutes=5),
            "decisive_event_id": f"d-{iid}", **extra}  # fmt: skip


def _alert(aid: str, detector: str, entity: str, minutes: float = 1) -> dict:
    ms = int((T + timedelta(minutes=minutes)).timestamp() * 1000)
    return {"alert_id": aid, "detector": detector, "entity_id": entity, "event_time_ms": ms,
            "trigger_event_id": f"t-{aid}"}  # fmt: skip


def test_precision_recall_hard_negatives_and_latency() -> None:
    incidents = [
        _incident("b1", "binge_bot", "bot1"), _incident("b2", "binge_bot", "bot2"),
        _incident("h1", "human_binger", "viewer", fraud=False),
    ]  # fmt: skip
    alerts = [
        _alert("a1", "binge_bot", "bot1"),
        _alert("a1", "binge_bot", "bot1"),  # a duplicate (a replay): counted once
        _alert("a2", "binge_bot", "viewer"),  # a false alert on the hard negative
        _alert("a3", "binge_bot", "bot1", minutes=60 * 24),  # long after: unmatched
    ]
    score = score_alerts(alerts, incidents, produced_ms={"d-b1": 1000.0, "t-a1": 1000.0},
                         received_ms={"a1": 1250.0, "a2": 5000.0})  # fmt: skip
    assert score.alerts == 3
    assert score.precision == 1 / 3 and score.recall == 1 / 2
    assert score.hard_negative_false_alerts == {"human_binger": 1}
    assert score.background_false_alerts == 1
    assert score.per_scenario["binge_bot"]["detected"] == 1
    assert score.latency_p99_ms == 250.0 and score.incident_latency_p99_ms == 250.0


def test_roc_auc_equals_the_pairwise_definition() -> None:
    pos, neg = [0.9, 0.7, 0.7, 0.3], [0.1, 0.7, 0.2, 0.8, 0.05]
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    assert roc_auc(pos, neg) == sum(pairs) / len(pairs)
    assert roc_auc([], neg) is None


def test_the_rules_meet_their_goals_on_a_labelled_scenario_with_hard_negatives() -> None:
    config = SimulationConfig(seed=21, users=1500, minutes=300, activity=3, incident_rates=RATES)
    sim = Simulator(config)
    alerts = FraudDetector(model=None).run(to_record(e) for e in sim.events())
    incidents = [i.as_row() for i in sim.incidents]
    assert sum(i["scenario"] == "shared_ip" for i in incidents) >= 15
    assert sum(i["scenario"] == "human_binger" for i in incidents) >= 15
    score = score_alerts([a.as_record() for a in alerts], incidents)
    for scenario in ("binge_bot", "credential_stuffing"):
        row = score.per_scenario[scenario]
        assert row["incidents"] >= 15, scenario
        assert row["precision"] == 1.0 and row["recall"] == 1.0, (scenario, row)
    # Exactly one alert per incident from each of these rules.
    by_rule = {
        d: [a for a in alerts if a.detector == d] for d in ("binge_bot", "credential_stuffing")
    }
    assert len(by_rule["binge_bot"]) == score.per_scenario["binge_bot"]["incidents"]
    assert (
        len(by_rule["credential_stuffing"])
        == score.per_scenario["credential_stuffing"]["incidents"]
    )
    assert score.hard_negative_false_alerts == {}


def test_the_river_score_ranks_account_takeovers_first() -> None:
    config = SimulationConfig(seed=7, users=3000, minutes=360, activity=4,
                              incident_rates={"account_takeover": 4.0, "shared_ip": 4.0,
                                              "human_binger": 4.0})  # fmt: skip
    sim = Simulator(config)
    rows = login_scores((to_record(e) for e in sim.events()), OnlineFraudModel())
    takeovers = {i.decisive_event_id for i in sim.incidents if i.scenario == "account_takeover"}
    positives = [r["score"] for r in rows if r["event_id"] in takeovers]
    negatives = [r["score"] for r in rows if r["event_id"] not in takeovers]
    assert len(positives) >= 15
    auc = roc_auc(positives, negatives)
    assert auc is not None and auc >= 0.9, auc
