"""The model that earns its alerts: the scenarios only it can find, its bars chosen on a
validation run, its score's ranking (pure logic, no broker; the real pipeline's run is
``tests/test_streams/test_fraud.py``)."""

from __future__ import annotations

import pytest

from movieflix_lab.events.codec import to_record
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.fraud import FraudDetector, ModelConfig, score_alerts
from movieflix_lab.fraud.calibrate import (
    MODEL_SCENARIOS,
    VALIDATION_SEED,
    average_precision,
    model_quality,
    ranking,
    score_log,
)
from movieflix_lab.jobs.fraud import FraudScenario, calibrate_bars
from movieflix_lab.simulate import Simulator
from movieflix_lab.simulate.traffic import MODEL_SCENARIOS as SIMULATED
from movieflix_lab.simulate.traffic import RULE_SCENARIOS


@pytest.fixture(scope="module")
def seeded():  # type: ignore[no-untyped-def]
    """``eval fraud``'s small scenario (seed 5), in memory: every detector, then rules only."""
    config = FraudScenario(seed=5, users=2000, minutes=180).config()
    events = [to_record(e) for e in Simulator(config).events()]
    simulator = Simulator(config)
    list(simulator.events())
    incidents = [i.as_row() for i in simulator.incidents]
    detector = FraudDetector(clock=lambda: 0.0)
    alerts = [a.as_record() for a in detector.run(events)]
    rules = [a.as_record() for a in FraudDetector(model=None, clock=lambda: 0.0).run(events)]
    return events, incidents, alerts, rules, len(detector.users), config


def test_the_rules_cannot_see_the_model_scenarios_and_the_model_finds_each(seeded) -> None:  # type: ignore[no-untyped-def]
    _, incidents, alerts, rules, users, config = seeded
    by_rules = score_alerts(rules, incidents)
    for scenario in ("account_sharing", "scraper", "slow_stuffing"):
        assert by_rules.per_scenario[scenario]["incidents"] >= 3, scenario
    for scenario in ("account_sharing", "scraper"):
        assert by_rules.per_scenario[scenario]["detected_by_any"] == 0, scenario
    # Slow stuffing stays below the stuffing rule (a compromised account may travel).
    assert "credential_stuffing" not in by_rules.per_scenario["slow_stuffing"]["detectors"]
    quality = model_quality(alerts, incidents, users, config.minutes / 1440)
    for scenario in MODEL_SCENARIOS:
        assert quality["recall_per_scenario"][scenario] >= 0.6, (scenario, quality)
    assert quality["recall"] >= 0.8 and quality["precision"] >= 0.8, quality
    assert quality["ordinary_rate_per_day"] <= 0.002, quality


def test_overall_precision_and_the_rule_scenarios_recall(seeded) -> None:  # type: ignore[no-untyped-def]
    _, incidents, alerts, _, users, _ = seeded
    score = score_alerts(alerts, incidents, active_users=users)
    assert score.precision is not None and score.precision >= 0.95
    for scenario in RULE_SCENARIOS:
        assert score.per_scenario[scenario]["recall"] >= 0.99, scenario
    assert score.false_alerts_per_1k_users is not None and score.false_alerts_per_1k_users < 2


def test_the_score_ranks_each_model_scenario_above_ordinary_traffic(seeded) -> None:  # type: ignore[no-untyped-def]
    events, incidents, _, _, _, _ = seeded
    ranked = ranking(score_log(events), incidents)
    for scenario in ("account_sharing", "scraper", "slow_stuffing"):
        row = ranked[scenario]
        assert row["roc_auc"] >= 0.95 and row["pr_auc"] >= 0.8, (scenario, row)
        curve = row["pr_curve"]
        assert curve and all(0 <= p["precision"] <= 1 and 0 <= p["recall"] <= 1 for p in curve)
        assert max(p["recall"] for p in curve) == 1.0


def test_average_precision_by_its_definition() -> None:
    # Ranked: P(0.9), N(0.8), P(0.7): precision at each positive 1/1 and 2/3.
    assert average_precision([0.9, 0.7], [0.8]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([], [0.5]) is None


def test_the_shipped_bars_are_the_ones_chosen_on_the_validation_seed() -> None:
    assert set(MODEL_SCENARIOS) == set(SIMULATED)  # the kit's labels and the model agree
    chosen = calibrate_bars()
    shipped = ModelConfig()
    assert (chosen.alert_score, chosen.ip_alert_score) == (
        shipped.alert_score,
        shipped.ip_alert_score,
    ), "re-run `movieflix-lab train fraud` and update ModelConfig's defaults"
    assert chosen.quality["precision"] >= chosen.min_precision
    assert chosen.validation["seed"] == VALIDATION_SEED


def test_an_evaluation_on_the_validation_seed_is_refused() -> None:
    with pytest.raises(MovieflixError, match="validation simulation"):
        FraudScenario(seed=VALIDATION_SEED)
