"""The River model: features, progressive validation, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from movieflix_lab.events.codec import to_record
from movieflix_lab.fraud import FEATURES, FraudDetector, ModelConfig, OnlineFraudModel
from movieflix_lab.fraud.model import features
from movieflix_lab.simulate import SimulationConfig, Simulator
from tests.fixtures.events import login, play, search, seconds

SMALL = SimulationConfig(seed=4, users=300, minutes=120, activity=6)


def _events() -> list[dict]:
    return [to_record(e) for e in Simulator(SMALL).events()]


def test_features_are_in_the_unit_interval_and_make_a_takeover_stand_out() -> None:
    memory: dict = {}
    normal = [features(memory, e) for e in (login("u", seconds(0)), play("u", seconds(60)))]
    for x in normal:
        assert set(x) == set(FEATURES) and all(0.0 <= v <= 1.0 for v in x.values())
    taken = features(memory, login("u", seconds(3600), country="BR", device="web-ato"))
    burst = [features(memory, search("u", seconds(3600 + 10 * i), device="web-ato"))
             for i in range(6)]  # fmt: skip
    assert taken["novel_login"] == 1.0 and taken["new_device"] == 1.0
    assert burst[-1]["search_rate"] == 1.0 and burst[-1]["novel_login"] == 1.0


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
    assert meta["events_learned"] == half and meta["features"] == list(FEATURES)
    assert meta["river_version"] and meta["config"]["seed"] == 3
    loaded = OnlineFraudModel.load(tmp_path)
    # Both continue identically over the rest of the stream.
    m1, m2 = {k: json.loads(json.dumps(v)) for k, v in memories.items()}, memories
    for e in events[half:]:
        a = loaded.process(m1.setdefault(e["user_id"], {}), e)
        b = model.process(m2.setdefault(e["user_id"], {}), e)
        assert a == b
    assert loaded.learned == model.learned == len(events)


def test_a_checkpoint_of_another_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    OnlineFraudModel().save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="delete the folder"):
        OnlineFraudModel.load(tmp_path)


def test_the_detector_runs_on_a_dataframe_without_kafka() -> None:
    import polars as pl

    frame = pl.DataFrame(_events())
    detector = FraudDetector(model=OnlineFraudModel(ModelConfig(warmup_events=500)))
    alerts = detector.run(frame.iter_rows(named=True))
    assert detector.model is not None and detector.model.learned > 1000
    assert all(a.detector in ("river_anomaly", "binge_bot", "credential_stuffing",
                              "impossible_travel", "new_login_activity", "failed_login_burst")
               for a in alerts)  # fmt: skip
    assert detector.model.drift is not None  # ADWIN watches the score stream


def test_one_walk_scores_and_learns_exactly_as_rivers_two_calls() -> None:
    """``score_then_learn`` against River's ``score_one`` then ``learn_one``: over the
    simulator's features (several window pivots), the same score at every event and the
    same masses in every node at the end."""
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
