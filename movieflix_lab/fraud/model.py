"""The online fraud model: behaviour features per user, scored by River's HalfSpaceTrees.

A plain object with River's face — :meth:`OnlineFraudModel.learn_one`,
:meth:`~OnlineFraudModel.score_one` — over feature dicts, plus :meth:`~OnlineFraudModel.process`,
which turns one event into features (from the user's ``memory``), scores them, then learns
them (progressive validation: every event is scored by a model that has not seen it). So a
notebook can run it over a DataFrame's rows and the stream app runs the same object, with
the memories in Quix state.

HalfSpaceTrees scores points by how little mass they fall into, and is weak when anomalies
come packed together (a burst of raw events fills its own region). So the features are not
raw events but what makes a burst or a takeover stand out per user, each in [0, 1]:

``novel_login``   the session's login came from a country the user never logged in from
``new_device``    the event's device is new for a user with history
``play_rate``     movie starts in the last 5 minutes (20 or more → 1)
``search_rate``   searches in the last 10 minutes (6 or more → 1)
``short_views``   share of the user's last 5 viewings that stopped before 15 % of the movie
``genre_surprise`` how rarely the user watched this genre before (after 3 viewings)
``since_login``   how recently the user logged in (now → 1, an hour or more → 0)

An ADWIN drift detector watches the score stream; its detections are counted and reported.
Checkpoints (:meth:`save`/:meth:`load`) write the pickled model and a JSON file of metadata
(features, events learned, drifts, versions) side by side.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import river
from river import anomaly, drift, stats

from movieflix_lab.fraud.rules import event_time_ms

__all__ = ["FEATURES", "ModelConfig", "OnlineFraudModel", "features"]

FEATURES = (
    "novel_login",
    "new_device",
    "play_rate",
    "search_rate",
    "short_views",
    "genre_surprise",
    "since_login",
)

Memory = dict[str, Any]
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    seed: int = 42
    n_trees: int = 10
    height: int = 8
    window_size: int = 1000
    #: A score above this running quantile of all scores so far raises a ``river_anomaly``
    #: alert (one per user per cooldown). HalfSpaceTrees scores sit in a narrow band whose
    #: place moves with the traffic, so the bar is relative, not a fixed score.
    alert_quantile: float = 0.995
    #: Events learned before any alert (the trees need a few windows of mass first).
    warmup_events: int = 3000


def _recent(times: list[int], ts: int, window_ms: int) -> list[int]:
    times = [t for t in times if t > ts - window_ms]
    times.append(ts)
    return times


def features(memory: Memory, event: dict[str, Any], ts: int | None = None) -> dict[str, float]:
    """Update a user's ``memory`` with ``event``; return the event's feature vector.

    >>> m = {}
    >>> login = {"event_type": "login", "event_id": "e1", "user_id": "u", "ip": "1.2.3.4",
    ...          "timestamp": 0, "country": "US", "device_id": "tv-1", "success": True}
    >>> features(m, login)["since_login"], features(m, {**login, "country": "DE"})["novel_login"]
    (1.0, 1.0)
    """
    ts = event_time_ms(event) if ts is None else ts
    kind = event["event_type"]
    devices: list[str] = memory.setdefault("devices", [])
    device = event.get("device_id")
    new_device = 1.0 if device and devices and device not in devices else 0.0
    if device and device not in devices:
        devices.append(device)
        del devices[:-20]
    if kind == "login" and event.get("success"):
        countries: list[str] = memory.setdefault("countries", [])
        novel = bool(countries) and event["country"] not in countries
        memory["login"] = [ts, 1.0 if novel else 0.0]
        if event["country"] not in countries:
            countries.append(event["country"])
            del countries[:-10]
    elif kind == "play" and event.get("position_s", 0) == 0:
        memory["plays"] = _recent(memory.get("plays", []), ts, 300_000)
    elif kind == "search":
        memory["searches"] = _recent(memory.get("searches", []), ts, 600_000)
    surprise = 0.0
    if kind == "watch":
        genres: dict[str, int] = memory.setdefault("genres", {})
        seen = sum(genres.values())
        if seen >= 3:
            surprise = 1.0 - genres.get(event["genre"], 0) / seen
        genres[event["genre"]] = genres.get(event["genre"], 0) + 1
        views = [*memory.get("views", []), 1 if event["completion_ratio"] < 0.15 else 0]
        memory["views"] = views[-5:]
    login_ts, novel_login = memory.get("login", [None, 0.0])
    since = 0.0 if login_ts is None else max(0.0, 1.0 - (ts - login_ts) / 3_600_000)
    views = memory.get("views", [])
    plays = [t for t in memory.get("plays", []) if t > ts - 300_000]
    searches = [t for t in memory.get("searches", []) if t > ts - 600_000]
    return {
        "novel_login": novel_login if since > 0 else 0.0,
        "new_device": new_device,
        "play_rate": min(1.0, len(plays) / 20),
        "search_rate": min(1.0, len(searches) / 6),
        "short_views": sum(views) / len(views) if views else 0.0,
        "genre_surprise": surprise,
        "since_login": round(since, 4),
    }


@dataclass
class OnlineFraudModel:
    """HalfSpaceTrees over per-user behaviour features, with drift detection on its scores."""

    config: ModelConfig = field(default_factory=ModelConfig)
    learned: int = 0
    drifts: int = 0
    last_drift_ms: int | None = None
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.trees = anomaly.HalfSpaceTrees(
            n_trees=self.config.n_trees,
            height=self.config.height,
            window_size=self.config.window_size,
            limits={name: (0.0, 1.0) for name in FEATURES},
            seed=self.config.seed,
        )
        self.drift = drift.ADWIN()
        self.bar = stats.Quantile(self.config.alert_quantile)
        #: Whether the last :meth:`process` call's score cleared the bar, and its features.
        self.anomalous = False
        self.last_features: dict[str, float] = {}

    # --- River's face ---------------------------------------------------------------
    def score_one(self, x: dict[str, float]) -> float:
        return float(self.trees.score_one(x))

    def learn_one(self, x: dict[str, float]) -> None:
        self.trees.learn_one(x)
        self.learned += 1

    def score_then_learn(self, x: dict[str, float]) -> float:
        """``score_one(x)`` then ``learn_one(x)``, in one walk down each of River's trees.

        River walks each tree twice per event: once to score (reading ``r_mass``, the last
        window's masses), once to learn (adding to ``l_mass``). With every feature present
        both walks take the same path, and neither reads what the other writes, so one walk
        does both on River's own nodes: the same scores, the same masses, the same window
        pivot (``tests/test_fraud/test_model.py`` compares it with River's two calls). Half
        the model's cost per event; anything else (a missing feature, trees not grown yet)
        takes River's calls.
        """
        hst = self.trees
        # River's private fields the walk shares with it (a River without them: its calls).
        if not hst.trees or len(x) != len(FEATURES) or not hasattr(hst, "_tree_nodes"):
            score = self.score_one(x)
            self.learn_one(x)
            return score
        height, size_limit = hst.height, 0.1 * hst.window_size
        scoring = not hst._first_window
        total = 0.0
        for node in hst.trees:
            depth_pow, adding = 1, scoring
            for _ in range(height):
                node.l_mass += 1
                if adding:
                    r = node.r_mass
                    total += r * depth_pow
                    adding = r >= size_limit
                    depth_pow <<= 1
                children = node.children
                node = children[0] if x[node.feature] < node.threshold else children[1]
            node.l_mass += 1
            if adding:
                total += node.r_mass * depth_pow
        hst.counter += 1
        if hst.counter == hst.window_size:
            for nodes in hst._tree_nodes:
                for each in nodes:
                    each.r_mass = each.l_mass
                    each.l_mass = 0
            hst._first_window = False
            hst.counter = 0
        self.learned += 1
        return 1 - total / hst._max_score if scoring else 0.0

    # --- one event ------------------------------------------------------------------
    def process(self, memory: Memory, event: dict[str, Any], ts: int | None = None) -> float:
        """Features from ``event`` (updating ``memory``), score, then learn; returns the score.

        Sets :attr:`anomalous` when the score clears the running quantile of earlier scores
        (after the warm-up).
        """
        x = features(memory, event, ts)
        self.last_features = x
        learned = self.learned
        score = self.score_then_learn(x)
        bar = self.bar.get()
        self.anomalous = learned >= self.config.warmup_events and bar is not None and score > bar
        self.bar.update(score)
        self.drift.update(score)
        if self.drift.drift_detected:
            self.drifts += 1
            self.last_drift_ms = ts if ts is not None else event_time_ms(event)
        return score

    # --- checkpoints ----------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model": "river.anomaly.HalfSpaceTrees",
            "river_version": river.__version__,
            "features": list(FEATURES),
            "config": self.config.__dict__,
            "events_learned": self.learned,
            "drifts_detected": self.drifts,
            "last_drift_ms": self.last_drift_ms,
            "created_at": self.created_at,
            "saved_at": time.time(),
        }

    def save(self, folder: Path) -> Path:
        """Write ``model.pkl`` and ``model.json`` into ``folder`` (atomically, each)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, payload in (
            ("model.pkl", pickle.dumps(self)),
            ("model.json", json.dumps(self.metadata(), indent=2).encode()),
        ):
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.replace(tmp, folder / name)
        return folder / "model.pkl"

    @classmethod
    def load(cls, folder: Path) -> OnlineFraudModel:
        """The checkpoint in ``folder``; refuses one written by another format version."""
        meta = json.loads((folder / "model.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{folder}/model.json has format {meta.get('format_version')}, this "
                f"movieflix-lab reads {FORMAT_VERSION}: delete the folder to start a new model"
            )
        with open(folder / "model.pkl", "rb") as handle:
            model = pickle.load(handle)
        if not isinstance(model, cls):
            raise ValueError(f"{folder}/model.pkl is not an OnlineFraudModel")
        return model

    @classmethod
    def load_or_new(cls, folder: Path, config: ModelConfig | None = None) -> OnlineFraudModel:
        if (folder / "model.pkl").exists():
            return cls.load(folder)
        return cls(config or ModelConfig())
