"""The simulator: determinism, realism, labelled incidents, flat memory."""

import itertools
import json
import tracemalloc
from collections import Counter
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from movieflix_lab.events import decode, encode
from movieflix_lab.simulate import (
    FRAUD_SCENARIOS,
    GENRES,
    JsonlSink,
    ParquetSink,
    SimulationConfig,
    Simulator,
    run_simulation,
)

BUSY = SimulationConfig(seed=11, users=300, movies=400, minutes=120, activity=15)


@pytest.fixture(scope="module")
def busy() -> tuple[Simulator, list]:
    simulator = Simulator(BUSY)
    return simulator, list(simulator.events())


def test_same_seed_same_events_other_seed_other_events(busy) -> None:  # type: ignore[no-untyped-def]
    _, events = busy
    again = [encode(e) for e in Simulator(BUSY).events()]
    assert again == [encode(e) for e in events]
    different = Simulator(
        SimulationConfig(seed=12, users=300, movies=400, minutes=120, activity=15)
    )
    assert [encode(e) for e in different.events()][:50] != again[:50]


def test_events_are_time_ordered_valid_and_within_the_run(busy) -> None:  # type: ignore[no-untyped-def]
    _, events = busy
    assert len(events) > 2500
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(events))
    end = BUSY.start + timedelta(minutes=BUSY.minutes or 0)
    assert BUSY.start <= events[0].timestamp and events[-1].timestamp < end
    for event in events[:: max(1, len(events) // 500)]:
        assert decode(encode(event)) == event
    assert len({e.event_id for e in events}) == len(events)


def test_sessions_are_consistent(busy) -> None:  # type: ignore[no-untyped-def]
    _, events = busy
    types = Counter(e.event_type for e in events)
    assert {"play", "pause", "seek", "stop", "rate", "search", "login", "watch"} <= set(types)
    assert types["stop"] == types["watch"]  # every stop ends in a watch-history record
    stops = {(e.user_id, e.session_id, e.movie_id, e.timestamp) for e in events
             if e.event_type == "stop"}  # fmt: skip
    for record in (e for e in events if e.event_type == "watch"):
        assert (record.user_id, record.session_id, record.movie_id, record.timestamp) in stops
        assert record.started_at <= record.timestamp
        assert 0 <= record.completion_ratio <= 1


def test_planted_tastes_drive_viewing(busy) -> None:  # type: ignore[no-untyped-def]
    simulator, events = busy
    favourite = {u.user_id: set(u.favourite_genres(3)) for u in simulator.world.users}
    regular = [e for e in events if e.event_type == "watch" and e.user_id in favourite]
    share = sum(e.genre in favourite[e.user_id] for e in regular) / len(regular)
    # Three genres of thirteen would be 23% by chance.
    assert share > 0.6, share


def test_popularity_is_long_tailed(busy) -> None:  # type: ignore[no-untyped-def]
    simulator, events = busy
    involved = {i.entity_id for i in simulator.incidents if i.entity_kind == "user"}
    plays = Counter(e.movie_id for e in events
                    if e.event_type == "watch" and e.user_id not in involved)  # fmt: skip
    counts = sorted(plays.values(), reverse=True)
    top = sum(counts[: max(1, len(counts) // 10)])
    assert top / sum(counts) > 0.3  # the top 10% of titles get far more than 10%


def test_daily_rhythm_evenings_are_busier() -> None:
    config = SimulationConfig(seed=3, users=3000, movies=300, minutes=24 * 60, activity=1,
                              incident_rates={})  # fmt: skip
    hours = Counter(e.timestamp.hour for e in Simulator(config).events() if e.event_type == "play")
    evening = sum(hours[h] for h in (19, 20, 21))
    night = sum(hours[h] for h in (3, 4, 5))
    assert evening > 4 * night, hours  # the rhythm itself is 8x; sessions run over hours


def test_incidents_are_labelled_and_shaped_as_configured() -> None:
    rates = {"binge_bot": 3.0, "credential_stuffing": 3.0, "account_takeover": 3.0,
             "human_binger": 3.0, "shared_ip": 3.0}  # fmt: skip
    config = SimulationConfig(seed=5, users=500, movies=500, minutes=8 * 60, incident_rates=rates)
    simulator = Simulator(config)
    events = list(simulator.events())
    by_id = {str(e.event_id): e for e in events}
    incidents = simulator.incidents
    per_scenario = Counter(i.scenario for i in incidents)
    for scenario in rates:  # Poisson(24): within ±3 standard deviations
        assert 24 - 15 <= per_scenario[scenario] <= 24 + 15, per_scenario

    for incident in incidents:
        assert incident.is_fraud == (incident.scenario in FRAUD_SCENARIOS)
        mine = [e for e in events if str(getattr(e, "ip", "")) == incident.entity_id] \
            if incident.entity_kind == "ip" else None  # fmt: skip
        complete = incident.end is not None and incident.end < config.start + timedelta(
            minutes=config.minutes - 15)  # fmt: skip
        if incident.scenario == "binge_bot" and complete:
            plays = [
                e for e in events if e.user_id == incident.entity_id and e.event_type == "play"
            ]
            assert len({p.movie_id for p in plays}) >= 100 or len(plays) >= 110
            assert plays[-1].timestamp - plays[0].timestamp < timedelta(minutes=5)
            decisive = by_id[incident.decisive_event_id]
            assert decisive == plays[99]
        if incident.scenario == "credential_stuffing" and complete:
            accounts = {e.user_id for e in mine}
            assert 55 <= len(accounts) <= 90
            assert max(e.timestamp for e in mine) - min(e.timestamp for e in mine) < timedelta(
                minutes=8)  # fmt: skip
        if incident.scenario == "shared_ip" and complete:
            accounts = {e.user_id for e in mine}
            assert 10 <= len(accounts) <= 30
            assert all(e.success for e in mine)
        if incident.scenario == "human_binger" and complete:
            plays = [e for e in events if e.user_id == incident.entity_id
                     and incident.start <= e.timestamp <= incident.end and e.event_type == "play"
                     and e.session_id == by_id_session(events, incident)]  # fmt: skip
            assert 12 <= len(plays) <= 16
        if incident.scenario == "account_takeover" and complete:
            login = by_id[incident.decisive_event_id]
            user = next(u for u in simulator.world.users if u.user_id == incident.entity_id)
            assert login.event_type == "login" and login.success
            assert login.country != user.country and login.device_id not in user.devices


def by_id_session(events, incident):  # type: ignore[no-untyped-def]
    """The session id of an incident's first play."""
    return next(e.session_id for e in events if e.user_id == incident.entity_id
                and e.event_type == "play" and e.timestamp >= incident.start)  # fmt: skip


def test_labels_go_to_parquet_never_into_events(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    result = run_simulation(BUSY, JsonlSink(out), labels_dir=tmp_path / "labels")
    lines = out.read_bytes().splitlines()
    assert len(lines) == result.events
    assert all(b"scenario" not in line and b"is_fraud" not in line for line in lines)
    for line in lines[:: max(1, len(lines) // 200)]:
        decode(line)  # each line is exactly a body the gateway accepts

    labels = pl.read_parquet(tmp_path / "labels" / "labels.parquet")
    assert labels.height == result.incidents > 0
    assert set(labels["scenario"]) <= set(Simulator(BUSY).config.incident_rates)
    manifest = json.loads((tmp_path / "labels" / "manifest.json").read_text())
    assert manifest["config"]["seed"] == BUSY.seed and manifest["events"] == result.events
    users = pl.read_parquet(tmp_path / "labels" / "users.parquet")
    taste = users.select([f"taste_{g}" for g in GENRES]).sum_horizontal()
    assert users.height == BUSY.users and ((taste - 1).abs() < 1e-9).all()


def test_parquet_output_round_trips(tmp_path: Path) -> None:
    config = SimulationConfig(seed=2, users=100, movies=200, minutes=60, activity=20)
    result = run_simulation(config, ParquetSink(tmp_path / "pq", batch_size=500))
    watch = pl.read_parquet(tmp_path / "pq" / "event_type=watch")
    total = sum(pl.read_parquet(folder).height for folder in (tmp_path / "pq").iterdir())
    assert total == result.events
    assert watch.height == result.by_type["watch"]
    assert not list((tmp_path / "pq").rglob("*.tmp"))


def test_events_mode_stops_at_the_count() -> None:
    config = SimulationConfig(seed=1, users=50, movies=100, minutes=None, events=1234)
    assert sum(1 for _ in Simulator(config).events()) == 1234


def test_memory_stays_flat_on_a_long_run() -> None:
    config = SimulationConfig(seed=9, users=2000, movies=1000, minutes=None, events=160_000,
                              activity=20)  # fmt: skip
    tracemalloc.start()
    try:
        samples = {}
        for count, _ in enumerate(Simulator(config).events(), 1):
            if count in (40_000, 160_000):
                samples[count] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    growth = samples[160_000] - samples[40_000]
    assert growth < 2_000_000, f"grew {growth / 1e6:.1f} MB over 120k events"


def test_a_catalog_too_small_for_every_genre_still_simulates() -> None:
    """Five movies and more genres: a session of a genre with no movie watches another."""
    config = SimulationConfig(seed=3, users=20, movies=5, minutes=60)
    simulator = Simulator(config)
    catalog = {m.movie_id for m in simulator.world.movies}
    watched = [e for e in simulator.events() if e.event_type == "watch"]
    assert watched and {e.movie_id for e in watched} <= catalog
