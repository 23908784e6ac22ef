"""The fraud rules on hand-made event sequences (pure logic, no broker)."""

from __future__ import annotations

from datetime import timedelta

from movieflix_lab.fraud import RuleConfig, RuleEngine
from movieflix_lab.fraud.rules import event_time_ms
from tests.fixtures.events import T0, login, play, search, seconds


def _binge(engine: RuleEngine, user: str, start_s: float, count: int, span_s: float) -> list:
    return [play(user, seconds(start_s + i * span_s / count)) for i in range(count)]


def test_a_burst_straddling_a_tumbling_window_edge_is_caught_once() -> None:
    # 100 starts from 12:02:30 to 12:07:28 (under 5 minutes), across the 12:05 edge of a
    # 5-minute tumbling grid: neither tumbling window holds 100 of them.
    engine = RuleEngine()
    events = _binge(engine, "bot", 150, 100, 298)
    buckets: dict[int, int] = {}
    for e in events:
        bucket = event_time_ms(e) // 300_000
        buckets[bucket] = buckets.get(bucket, 0) + 1
    assert len(buckets) == 2 and max(buckets.values()) < 100
    alerts = engine.run(events)
    assert [a.detector for a in alerts] == ["binge_bot"]
    assert alerts[0].decisive_event_id == events[99]["event_id"]
    assert alerts[0].evidence["movies_started"] == 100
    assert alerts[0].window_start_ms == event_time_ms(events[0])


def test_99_starts_in_five_minutes_or_100_in_more_do_not_alert() -> None:
    assert RuleEngine().run(_binge(RuleEngine(), "u", 0, 99, 240)) == []
    # 100 starts over 5 min 30 s: no 5-minute window holds 100 of them.
    assert RuleEngine().run(_binge(RuleEngine(), "u", 0, 100, 330)) == []
    # Resumed plays (after a pause) are not starts.
    resumes = [play("u", seconds(i), position=60.0) for i in range(150)]
    assert RuleEngine().run(resumes) == []


def test_a_human_binger_never_alerts() -> None:
    # 16 episodes in about an hour, each started after the last.
    events = [play("viewer", timedelta(minutes=4 * i)) for i in range(16)]
    assert RuleEngine().run(events) == []


def test_one_alert_per_incident_and_a_new_one_after_the_cooldown() -> None:
    engine = RuleEngine()
    first = engine.run(_binge(engine, "bot", 0, 160, 280))
    assert len(first) == 1
    # The same bot again 10 minutes later: still the same incident (cool-down 30 min).
    assert engine.run(_binge(engine, "bot", 880, 120, 200)) == []
    # Two hours later: a new incident, a new alert with a new id.
    later = engine.run(_binge(engine, "bot", 7200 + 1080, 120, 200))
    assert len(later) == 1 and later[0].alert_id != first[0].alert_id


def test_a_replay_gives_the_same_alert_ids() -> None:
    events = _binge(RuleEngine(), "bot", 0, 130, 200)
    stuffing = [login(f"acct{i}", seconds(3 * i), ip="185.1.1.1", success=False) for i in range(60)]
    once = RuleEngine().run(events + stuffing)
    again = RuleEngine().run(events + stuffing)
    assert len(once) == 2
    assert [a.alert_id for a in once] == [a.alert_id for a in again]


def test_credential_stuffing_is_an_exact_distinct_count_in_a_sliding_window() -> None:
    ip = "185.7.7.7"
    attempts = [login(f"acct{i}", seconds(6 * i), ip=ip, success=False) for i in range(60)]
    alerts = [a for a in RuleEngine().run(attempts) if a.detector == "credential_stuffing"]
    assert len(alerts) == 1
    assert alerts[0].entity_kind == "ip" and alerts[0].entity_id == ip
    assert alerts[0].decisive_event_id == attempts[49]["event_id"]  # the 50th account
    assert alerts[0].evidence["distinct_accounts"] == 50
    # The same account retried 200 times is one account.
    retries = [login("acct", seconds(i), ip=ip, success=False) for i in range(200)]
    assert [a for a in RuleEngine().run(retries) if a.detector == "credential_stuffing"] == []
    # 60 accounts spread over 20 minutes: at most 30 within any 10 minutes.
    slow = [login(f"acct{i}", seconds(20 * i), ip=ip) for i in range(60)]
    assert [a for a in RuleEngine().run(slow) if a.detector == "credential_stuffing"] == []


def test_an_office_ip_with_30_colleagues_never_alerts() -> None:
    office = [login(f"colleague{i}", seconds(20 * i), ip="62.1.2.3") for i in range(30)]
    assert RuleEngine().run(office) == []


def test_the_thresholds_come_from_the_config() -> None:
    strict = RuleConfig(binge_movies=10, binge_window=timedelta(minutes=1))
    events = [play("u", seconds(5 * i)) for i in range(10)]
    assert [a.detector for a in RuleEngine(strict).run(events)] == ["binge_bot"]
    assert RuleEngine().run(events) == []


def test_impossible_travel_between_two_logins() -> None:
    engine = RuleEngine()
    assert engine.run([login("u", seconds(0), country="US")]) == []
    alerts = engine.run([login("u", timedelta(hours=1), country="DE", device="web-x")])
    assert [a.detector for a in alerts] == ["impossible_travel"]
    assert alerts[0].evidence["from"] == "US" and alerts[0].evidence["to"] == "DE"
    # A day later the same trip is possible; neighbours are never impossible travel.
    calm = RuleEngine()
    calm.run([login("v", seconds(0), country="US")])
    assert calm.run([login("v", timedelta(hours=20), country="DE")]) == []
    assert RuleEngine().run([login("w", seconds(0), country="NL"),
                             login("w", seconds(60), country="BE")]) == []  # fmt: skip


def test_a_new_country_and_device_followed_by_activity_alerts() -> None:
    engine = RuleEngine()
    history = [login("u", seconds(0), country="US", device="tv-1"), play("u", seconds(60))]
    assert engine.run(history) == []
    takeover = login("u", timedelta(hours=30), country="BR", ip="177.1.1.1", device="web-ato")
    assert engine.run([takeover]) == []
    activity = [
        search("u", timedelta(hours=30, seconds=20 * i), device="web-ato") for i in range(3)
    ]
    activity += [play("u", timedelta(hours=30, minutes=2 + i), device="web-ato") for i in range(2)]
    alerts = engine.run(activity)
    assert [a.detector for a in alerts] == ["new_login_activity"]
    assert alerts[0].decisive_event_id == takeover["event_id"]
    assert alerts[0].trigger_event_id == activity[-1]["event_id"]
    # The owner's own activity after a normal login does not alert.
    owner = RuleEngine()
    owner.run(history)
    normal = [login("u", timedelta(hours=30), country="US", device="phone-2")]
    normal += [play("u", timedelta(hours=30, minutes=i), device="phone-2") for i in range(8)]
    assert owner.run(normal) == []


def test_a_burst_of_failed_logins_alerts_once() -> None:
    failures = [login("u", seconds(30 * i), success=False) for i in range(15)]
    alerts = RuleEngine().run(failures)
    assert [a.detector for a in alerts] == ["failed_login_burst"]
    assert alerts[0].decisive_event_id == failures[9]["event_id"]
    assert RuleEngine().run(failures[:9]) == []


def test_alert_records_carry_what_the_issue_asks_for() -> None:
    alert = RuleEngine().run(_binge(RuleEngine(), "bot", 0, 100, 200))[0].as_record()
    for key in ("alert_id", "detector", "score", "severity", "window_start", "window_end",
                "evidence", "event_time", "detected_at", "entity_id", "user_ids"):  # fmt: skip
        assert alert[key] not in (None, ""), key
    assert alert["event_time_ms"] == int((T0 + seconds(99 * 2)).timestamp() * 1000)
    assert len(alert["evidence"]["event_ids"]) == 5
