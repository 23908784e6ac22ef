"""Issue 20's rule fixes, pure logic: every country, exact decisive events whatever the
arrival order, normalised IPs, and the targets of an attack as evidence, not suspects."""

from __future__ import annotations

import logging
import random
from datetime import timedelta

import pytest

from movieflix_lab.fraud import FraudDetector, ModelConfig, OnlineFraudModel, RuleEngine
from movieflix_lab.fraud.evaluate import score_alerts
from movieflix_lab.fraud.geo import Geography, countries, distance_km
from movieflix_lab.fraud.rules import GEOGRAPHY, event_time_ms, normalise_ip
from tests.fixtures.events import login, play, seconds


def _latest(alerts: list) -> dict:
    """Each alert id's highest revision (what a consumer keeps)."""
    kept: dict = {}
    for alert in alerts:
        if alert.alert_id not in kept or alert.revision >= kept[alert.alert_id].revision:
            kept[alert.alert_id] = alert
    return kept


def test_every_iso_country_has_a_point_but_two_uninhabited_territories() -> None:
    table = countries()
    assert len(table) == 250  # ISO 3166-1's 249 codes and Kosovo's XK, as GeoNames lists them
    assert {"GB", "NZ", "TH", "CL", "XK", "AQ", "VA", "TV"} <= set(table)
    unlocated = sorted(code for code, c in table.items() if c.lat is None)
    assert unlocated == ["BV", "UM"]
    for c in table.values():
        assert len(c.alpha2) == 2 and len(c.alpha3) == 3 and c.name
        if c.lat is not None:
            assert -90 <= c.lat <= 90 and -180 <= c.lon <= 180  # type: ignore[operator]
    # Great-circle distances between where people are.
    assert 17_000 < distance_km("GB", "NZ") < 20_000  # type: ignore[operator]
    assert 12_000 < distance_km("DE", "CL") < 13_500  # type: ignore[operator]
    assert 13_000 < distance_km("US", "TH") < 15_000  # type: ignore[operator]
    assert distance_km("NL", "BE") < 200  # type: ignore[operator]


@pytest.mark.parametrize(
    ("first", "second", "alerts"),
    [("GB", "NZ", True), ("US", "TH", True), ("DE", "CL", True), ("IS", "FJ", True),
     ("NL", "BE", False), ("FR", "MC", False), ("AT", "LI", False)],
)  # fmt: skip
def test_impossible_travel_between_any_two_countries(first: str, second: str,
                                                     alerts: bool) -> None:  # fmt: skip
    engine = RuleEngine()
    engine.run([login("u", seconds(0), country=first)])
    found = engine.run([login("u", timedelta(hours=2), country=second)])
    assert [a.detector for a in found] == (["impossible_travel"] if alerts else [])


def test_an_unknown_or_unlocated_country_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    geo = Geography()
    with caplog.at_level(logging.WARNING, logger="movieflix_lab.fraud.geo"):
        for _ in range(3):
            assert geo.km("GB", "ZZ") is None
            assert geo.km("BV", "GB") is None
    assert geo.counts() == {"unknown": {"ZZ": 3}, "unlocated": {"BV": 3}}
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2 and "'ZZ'" in logged[0] and "Bouvet Island" in logged[1]
    # The rule's own geography counts what it could not check.
    before = GEOGRAPHY.unknown["QQ"]
    engine = RuleEngine()
    engine.run([login("u", seconds(0), country="GB")])
    assert engine.run([login("u", seconds(60), country="QQ")]) == []
    assert GEOGRAPHY.unknown["QQ"] == before + 1


def test_a_binge_is_dated_at_the_100th_start_in_event_time_whatever_the_order() -> None:
    starts = [play("bot", seconds(2 * i)) for i in range(130)]
    rng = random.Random(3)
    for _ in range(5):
        shuffled = starts[:]
        rng.shuffle(shuffled)
        alerts = _latest(RuleEngine().run(shuffled))
        assert len(alerts) == 1
        (alert,) = alerts.values()
        assert alert.decisive_event_id == starts[99]["event_id"]
        assert alert.event_time_ms == event_time_ms(starts[99])


def test_a_late_start_revises_the_alert_with_the_same_id() -> None:
    starts = [play("bot", seconds(2 * i)) for i in range(110)]
    late = starts.pop(50)  # the device sends it after all the others
    engine = RuleEngine()
    first = engine.run(starts)
    assert len(first) == 1 and first[0].decisive_event_id == starts[99]["event_id"]
    revised = engine.run([late])
    assert len(revised) == 1 and revised[0].revision == 1
    assert revised[0].alert_id == first[0].alert_id
    assert revised[0].decisive_event_id == starts[98]["event_id"]  # the 100th in time now
    assert revised[0].trigger_event_id == late["event_id"]
    assert revised[0].as_record()["revision"] == 1


def test_a_stuffing_burst_out_of_order_is_dated_at_the_50th_account() -> None:
    ip = "185.7.7.7"
    attempts = [login(f"acct{i}", seconds(6 * i), ip=ip, success=False) for i in range(70)]
    rng = random.Random(5)
    for _ in range(5):
        shuffled = attempts[:]
        rng.shuffle(shuffled)
        alerts = _latest([a for a in RuleEngine().run(shuffled)
                          if a.detector == "credential_stuffing"])  # fmt: skip
        assert len(alerts) == 1
        (alert,) = alerts.values()
        assert alert.decisive_event_id == attempts[49]["event_id"]
        assert alert.event_time_ms == event_time_ms(attempts[49])
    # Through the horizon a stream app gives (the watermark), the same.
    detector = FraudDetector(model=None)
    memory: dict = {}
    out = []
    for attempt in sorted(attempts, key=lambda a: (int(a["user_id"][4:]) % 2, a["timestamp"])):
        out += detector.ip_step(memory, attempt, event_time_ms(attempt), 0, horizon_ms=0)
    (final,) = _latest(out).values()
    assert final.decisive_event_id == attempts[49]["event_id"]


def test_ips_are_keyed_normalised_and_shown_as_sent() -> None:
    assert normalise_ip("2001:0DB8:0000:0000:0000:0000:0000:0001") == "2001:db8::1"
    assert normalise_ip("::ffff:185.7.7.7") == "185.7.7.7"
    # One source spelling its address two ways is one source.
    spellings = ("::ffff:185.7.7.7", "185.7.7.7")
    attempts = [
        login(f"acct{i}", seconds(6 * i), success=False, ip=spellings[i % 2]) for i in range(55)
    ]
    (alert,) = [a for a in RuleEngine().run(attempts) if a.detector == "credential_stuffing"]
    assert alert.entity_id == "185.7.7.7" and alert.evidence["ip_normalised"] == "185.7.7.7"
    assert (
        len(alert.evidence["ip_spellings"]) == 2 and "185.7.7.7" in alert.evidence["ip_spellings"]
    )
    burst = [login("u", seconds(30 * i), success=False, ip="2001:db8::7") for i in range(10)]
    (failed,) = RuleEngine().run(burst)
    assert failed.evidence["ip"] == "2001:db8::7" and failed.evidence["source_ips"] == [
        "2001:db8::7"
    ]


def test_the_targets_of_a_stuffing_attack_are_evidence_not_suspects() -> None:
    ip = "185.9.9.9"
    attempts = [login(f"acct{i}", seconds(6 * i), ip=ip, success=i in (7, 33),
                      device="bot-1") for i in range(60)]  # fmt: skip
    (alert,) = [a for a in RuleEngine().run(attempts) if a.detector == "credential_stuffing"]
    assert alert.user_ids == ["acct7", "acct33"]  # the accounts it got into
    assert alert.evidence["targets"] == 48 and alert.evidence["compromised"] == 2
    assert alert.evidence["target_ids"] == ["acct0", "acct1", "acct2", "acct3", "acct4"]
    # The model never alerts on a failed login, however it scores.
    eager = FraudDetector(model=OnlineFraudModel(ModelConfig(warmup_events=0, alert_score=0.0)))
    found = eager.run([play(f"acct{i}", seconds(i)) for i in range(60)] + attempts)
    failed = {a["event_id"] for a in attempts if not a["success"]}
    river = [a for a in found if a.detector == "river_anomaly"]
    assert river and not [a for a in river if a.decisive_event_id in failed]
    # Scoring: a user alert on a target is a false alert; on a compromised account, true.
    incident = {"incident_id": "s1", "scenario": "credential_stuffing", "is_fraud": True,
                "entity_kind": "ip", "entity_id": ip, "start": attempts[0]["timestamp"],
                "end": attempts[-1]["timestamp"], "user_ids": [f"acct{i}" for i in range(60)],
                "suspect_ids": ["acct7", "acct33"], "decisive_event_id": "x"}  # fmt: skip
    on = [{"alert_id": u, "detector": "river_anomaly", "entity_id": u,
           "event_time_ms": event_time_ms(attempts[10])} for u in ("acct7", "acct8")]  # fmt: skip
    score = score_alerts(on, [incident])
    assert score.per_detector["river_anomaly"]["true_alerts"] == 1
