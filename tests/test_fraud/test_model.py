"""The River model: features, progressive validation, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from movieflix_lab.events.codec import to_record
from movieflix_lab.fraud import DETECTORS, FEATURES, FraudDetector, ModelConfig, OnlineFraudModel
from movieflix_lab.fraud.model import features
from movieflix_lab.simulate import SimulationConfig, Simulator
from tests.fixtures.events import login, play, search, seconds

SMALL = SimulationConfig(seed=4, users=300, minutes=120, activity=6)


def _events() -> list[dict]:
    return [to_record(e) for e in Simulator(SMALL).events()]


def _watch(user: str, at: float, genre: str, device: str = "tv-1") -> dict:
    event = play(user, seconds(at), device=device)
    return {**event, "event_type": "watch", "genre": genre, "completion_ratio": 0.9}


def test_features_are_in_the_unit_interval_and_zero_for_an_ordinary_user() -> None:
    memory: dict = {}
    events = [login("u", seconds(0)), play("u", seconds(60)), search("u", seconds(90))]
    events += [*[_watch("u", 120 + i, "drama") for i in range(6)], play("u", seconds(4000))]
    for x in (features(memory, e) for e in events):
        assert set(x) == set(FEATURES), x
        assert all(v == 0.0 for k, v in x.items() if k != "play_rate") and x["play_rate"] <= 0.05


def test_features_measure_departures_from_the_users_own_history() -> None:
    memory: dict = {}
    for e in [login("u", seconds(0)), *[_watch("u", 60 + i, "drama") for i in range(8)]]:
        features(memory, e)
    # A failed login from an attacker's device changes nothing of the user's.
    attempt = features(memory, login("u", seconds(4000), device="bot-1", success=False))
    assert all(v == 0.0 for v in attempt.values()) and "bot-1" not in memory["device_seen"]
    # Two hours in: a device new to the user (weak alone), then viewings far from their taste.
    arrival = features(memory, login("u", seconds(7200), device="tv-new"))
    assert arrival["new_device"] == pytest.approx(0.3) and arrival["off_taste"] == 0.0
    off = [features(memory, _watch("u", 7300 + 60 * i, "horror", "tv-new")) for i in range(3)]
    assert off[0]["off_taste"] == 0.0  # one viewing is no pattern
    assert off[-1]["off_taste"] > 0.8 and off[-1]["new_device"] == pytest.approx(0.3)
    # Devices watching at once: four → 1.
    shared = [features(memory, play("u", seconds(9000 + i), device=f"d{i}")) for i in range(4)]
    assert [x["concurrent_devices"] for x in shared][-1] == 1.0
    # Searching far beyond what the user watches.
    scraping = [features(memory, search("u", seconds(12000 + 5 * i))) for i in range(40)]
    assert scraping[3]["search_ratio"] == 0.0 and scraping[-1]["search_ratio"] == 1.0
    # Another country for the user.
    abroad = features(memory, login("u", seconds(13000), country="BR"))
    assert abroad["novel_login"] == 1.0


def test_ip_features_see_many_failing_accounts_not_an_office() -> None:
    from movieflix_lab.fraud.model import ip_features

    office: dict = {}
    for i in range(30):
        x = ip_features(office, login(f"u{i}", seconds(10 * i), ip="62.1.1.1"))
    assert all(v == 0.0 for v in x.values())
    source: dict = {}
    for i in range(20):
        attempt = {**login(f"v{i}", seconds(600 * i), ip="193.1.1.1", success=False),
                   "failure_reason": "unknown_user" if i % 3 == 0 else "bad_password"}  # fmt: skip
        x = ip_features(source, attempt)
    assert x == {"failed_accounts": 1.0, "unknown_accounts": 1.0, "failed_share": 1.0}


def test_a_flood_from_one_entity_is_scored_but_does_not_teach_the_trees() -> None:
    model = OnlineFraudModel(ModelConfig(seed=1, teach_cap=20))
    memory: dict = {}
    for i in range(100):  # a bot: 100 movie starts in 100 seconds
        model.process(memory, play("bot", seconds(i)))
    assert model.learned == 20
    ip_memory: dict = {}
    for i in range(50):
        model.process_ip(ip_memory, login(f"v{i}", seconds(i), ip="9.9.9.9", success=False))
    assert model.ip_learned == model.config.ip_teach_cap


def test_a_failed_login_is_never_anomalous() -> None:
    model = OnlineFraudModel(ModelConfig(seed=1, warmup_events=0, alert_score=0.0))
    model.process({}, play("u", seconds(0)))
    assert model.anomalous  # any score reaches a bar of 0
    model.process({}, login("u", seconds(1), device="bot-1", success=False))
    assert not model.anomalous


def test_progressive_validation_scores_before_learning() -> None:
    model = OnlineFraudModel(ModelConfig(seed=1))
    twin = OnlineFraudModel(ModelConfig(seed=1))
    event = login("u", seconds(0))
    x = features({}, event)
    expected = twin.score_one(x)  # what an untrained model says
    assert model.process({}, event) == expected
    assert model.learned == 1


def test_a_checkpoint_reloads_the_same_model(tmp_path: Path) -> None:
    model = OnlineFraudModel(ModelConfig(seed=3, warmup_events=10))
    memories: dict = {}
    events = _events()
    half = len(events) // 2
    assert half > 1000
    for e in events[:half]:
        model.process(memories.setdefault(e["user_id"], {}), e)
    model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["events_learned"] == model.learned > 500 and meta["features"] == list(FEATURES)
    assert meta["river_version"] and meta["config"]["seed"] == 3
    loaded = OnlineFraudModel.load(tmp_path)
    # Both continue identically over the rest of the stream.
    m1, m2 = {k: json.loads(json.dumps(v)) for k, v in memories.items()}, memories
    for e in events[half:]:
        a = loaded.process(m1.setdefault(e["user_id"], {}), e)
        b = model.process(m2.setdefault(e["user_id"], {}), e)
        assert a == b
    assert loaded.learned == model.learned > meta["events_learned"]


def test_a_checkpoint_of_another_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    OnlineFraudModel().save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="delete the folder"):
        OnlineFraudModel.load(tmp_path)


def test_the_detector_runs_on_a_dataframe_without_kafka() -> None:
    import polars as pl

    frame = pl.DataFrame(_events(), infer_schema_length=None)
    detector = FraudDetector(model=OnlineFraudModel(ModelConfig(warmup_events=500)))
    alerts = detector.run(frame.iter_rows(named=True))
    assert detector.model is not None and detector.model.learned > 1000
    assert {a.detector for a in alerts} <= set(DETECTORS)
    assert detector.model.drift is not None  # ADWIN watches the score stream


def test_the_walk_scores_and_learns_exactly_as_rivers_two_calls() -> None:
    """``score_then_learn`` (:class:`TreeWalk`: paths and scores memoised, learning added at
    the pivot) against River's ``score_one`` then ``learn_one``: over the simulator's
    features (several window pivots), the same score at every event and the same masses in
    every node at the end."""
    memory: dict = {}
    xs = [features(memory.setdefault(e["user_id"], {}), e) for e in _events()
          if FraudDetector.relevant(e)]  # fmt: skip
    config = ModelConfig(seed=7, window_size=250)
    fused, river = OnlineFraudModel(config), OnlineFraudModel(config)
    assert len(xs) > 4 * config.window_size
    for x in xs:
        expected = river.score_one(x)
        river.learn_one(x)
        assert fused.score_then_learn(x) == expected

    def masses(model: OnlineFraudModel) -> list[tuple[int, int]]:
        return [(n.l_mass, n.r_mass) for nodes in model.trees._tree_nodes for n in nodes]

    assert masses(fused) == masses(river)
    assert (fused.learned, fused.trees.counter) == (river.learned, river.trees.counter)
    assert any(score > 0 for score in [river.score_one(x) for x in xs[-50:]])


def test_the_walk_stays_rivers_through_pickles_lone_scores_and_a_full_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mid-window a pickle holds every event taught (and a model loaded from it goes on as
    River does), a score without learning is River's ``score_one``, a vector with a missing
    feature takes River's own calls, and a path cache that fills up starts over, exactly."""
    import pickle

    from movieflix_lab.fraud import model as model_module

    monkeypatch.setattr(model_module, "MAX_PATHS", 7)
    memory: dict = {}
    xs = [features(memory.setdefault(e["user_id"], {}), e) for e in _events()
          if FraudDetector.relevant(e)]  # fmt: skip
    config = ModelConfig(seed=11, window_size=100)
    fused, river = OnlineFraudModel(config), OnlineFraudModel(config)
    hst = river.trees  # River's object, driven by River's own calls only
    for i, x in enumerate(xs[:1000]):
        if i % 7 == 3:  # scored, not learned
            assert fused.score_one(x) == float(hst.score_one(x))
            continue
        if i % 97 == 50:  # a missing feature
            x = {name: value for name, value in x.items() if name != "play_rate"}
        expected = float(hst.score_one(x))
        hst.learn_one(x)
        assert fused.score_then_learn(x) == expected
        if i % 250 == 125:  # mid-window
            fused = pickle.loads(pickle.dumps(fused))
    masses = [[(n.l_mass, n.r_mass) for n in nodes] for nodes in fused.trees._tree_nodes]
    assert masses == [[(n.l_mass, n.r_mass) for n in nodes] for nodes in hst._tree_nodes]
    assert fused.trees.counter == hst.counter and hst.counter > 0
