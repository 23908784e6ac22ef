"""The online fraud model: behaviour features per user and per IP, scored by River.

A plain object with River's face — :meth:`OnlineFraudModel.learn_one`,
:meth:`~OnlineFraudModel.score_one` — over feature dicts, plus :meth:`~OnlineFraudModel.process`
(a user's event) and :meth:`~OnlineFraudModel.process_ip` (an IP's login attempt), which turn
one event into features (from the entity's ``memory``), score them, then learn them
(progressive validation: every event is scored by a model that has not seen it). So a
notebook can run it over a DataFrame's rows and the stream app runs the same object, with
the memories in Quix state.

Two River ``HalfSpaceTrees``, one per entity. HalfSpaceTrees scores a point by how little mass
falls where it does, so the features are built for what the rules cannot see by design: each
is 0 for nearly every event of an ordinary user and near 1 only for a behaviour that stands
out *against the entity's own history* (a new device, a taste the user never had, more
devices at once than they use). Per user:

``novel_login``        the last hour's login came from a country the user never logged in from
``new_device``         the event's device appeared in the last 2 hours, an hour or more after
                       the user's first device (a device of the user's first hour is theirs);
                       0.3, not 1: alone it is weak evidence
``off_taste``          on such a new device: how far its viewings are from the user's own
                       taste (the share of the user's earlier viewings in each one's genre)
``concurrent_devices`` devices that started a movie in the last 30 minutes (2 → 0, 4+ → 1)
``search_ratio``       searches beyond what the last hour's movie starts explain
``play_rate``          movie starts in the last 5 minutes (20 or more → 1)

Per IP (every login attempt from it, in the last 6 hours):

``failed_accounts``    distinct accounts with a failed attempt (16 or more → 1)
``unknown_accounts``   distinct account names that do not exist (5 or more → 1)
``failed_share``       failed attempts / attempts (from 5 attempts)

Every event is scored by trees that have not learned it (progressive validation), but one
entity teaches them at most ``teach_cap`` events per 10 minutes (an IP ``ip_teach_cap``
attempts an hour): otherwise a binge bot's or a stuffing source's flood fills the trees'
window and becomes the mass they call normal, and ordinary events start to look rare.

An alert (``river_anomaly`` on a user, ``river_ip_anomaly`` on an IP) is raised when a score
reaches a fixed bar, chosen on a *validation* simulation, never on the one it is tested on
(:mod:`movieflix_lab.fraud.calibrate`): HalfSpaceTrees' scores are a share of trees in which the
point is isolated, so a fixed bar means the same on any traffic, where a running quantile would
alert on a fixed share of every stream however clean. An ADWIN drift detector watches the user
score stream; its detections are counted and reported. Checkpoints (:meth:`save`/:meth:`load`)
write the pickled model and a JSON file of metadata (features, events learned, drifts,
versions) side by side.
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
from river import anomaly, drift

from movieflix_lab.fraud.rules import event_time_ms

__all__ = ["FEATURES", "IP_FEATURES", "ModelConfig", "OnlineFraudModel", "features", "ip_features"]

FEATURES = (
    "novel_login",
    "new_device",
    "off_taste",
    "concurrent_devices",
    "search_ratio",
    "play_rate",
)
IP_FEATURES = ("failed_accounts", "unknown_accounts", "failed_share")

Memory = dict[str, Any]
FORMAT_VERSION = 2

MINUTE = 60_000
HOUR = 60 * MINUTE
#: ``new_device``'s value. HalfSpaceTrees splits a feature at a uniform point of [0, 1], so a
#: feature's value is the share of splits that isolate it: a new device alone is weak
#: evidence (people buy devices), strong only with what follows on it.
NEW_DEVICE = 0.3


@dataclass(frozen=True)
class ModelConfig:
    seed: int = 42
    n_trees: int = 10
    height: int = 8
    window_size: int = 1000
    #: A user event scoring this or more raises a ``river_anomaly`` alert (one per user per
    #: cooldown). The bars are chosen by ``movieflix-lab train fraud`` on its validation
    #: simulation (:mod:`movieflix_lab.fraud.calibrate`; a test keeps them equal).
    alert_score: float = 0.6025
    #: The same for an IP's login attempt (``river_ip_anomaly``).
    ip_alert_score: float = 0.65
    #: Events learned before any alert (the trees need a few windows of mass first).
    warmup_events: int = 3000
    #: Logins are a few percent of the events: the IP trees have a smaller window.
    ip_window_size: int = 250
    ip_warmup_events: int = 500
    #: Events one user may teach the trees per 10 minutes, attempts one IP per hour (more
    #: are scored, not learned): an attacker's flood does not become the normal.
    teach_cap: int = 20
    ip_teach_cap: int = 5


def _since(times: list[Any], ts: int, window_ms: int) -> list[Any]:
    """The items (``[ts, ...]`` or times) newer than ``window_ms`` before ``ts``."""
    cut = ts - window_ms
    return [t for t in times if (t[0] if isinstance(t, list) else t) > cut]


def features(memory: Memory, event: dict[str, Any], ts: int | None = None) -> dict[str, float]:
    """Update a user's ``memory`` with ``event``; return the event's feature vector.

    A failed login changes nothing of the user's: anyone can try a password, so it neither
    adds a device nor counts as the user's activity.

    >>> m = {}
    >>> login = {"event_type": "login", "event_id": "e1", "user_id": "u", "ip": "1.2.3.4",
    ...          "timestamp": 0, "country": "US", "device_id": "tv-1", "success": True}
    >>> features(m, login)["novel_login"], features(m, {**login, "country": "DE"})["novel_login"]
    (0.0, 1.0)
    """
    ts = event_time_ms(event) if ts is None else ts
    kind = event["event_type"]
    if kind == "login" and not event.get("success"):
        return dict.fromkeys(FEATURES, 0.0)
    first_seen: dict[str, int] = memory.setdefault("device_seen", {})
    device = event.get("device_id")
    if device and device not in first_seen:
        first_seen[device] = ts
        if len(first_seen) > 20:
            del first_seen[min(first_seen, key=first_seen.__getitem__)]
    user_start = memory.setdefault("first_ms", ts)
    seen = first_seen.get(device, ts) if device else ts
    new = seen - user_start >= HOUR and ts - seen < 2 * HOUR
    new_device = NEW_DEVICE if new else 0.0
    if kind == "login":
        countries: list[str] = memory.setdefault("countries", [])
        novel = bool(countries) and event["country"] not in countries
        memory["login"] = [ts, 1.0 if novel else 0.0]
        if event["country"] not in countries:
            countries.append(event["country"])
            del countries[:-10]
    elif kind == "play":
        memory["plays"] = [*_since(memory.get("plays", []), ts, HOUR), [ts, device]]
    elif kind == "search":
        memory["searches"] = [*_since(memory.get("searches", []), ts, HOUR), ts]
    off: list[Any] = memory.get("off", [])
    if kind == "watch":
        genres: dict[str, int] = memory.setdefault("genres", {})
        total = sum(genres.values())
        if new_device and total >= 5:
            share = (genres.get(event["genre"], 0) + 1) / (total + len(genres) + 1)
            off = [*off, [device, round(1.0 - share, 4)]][-5:]
            memory["off"] = off
        genres[event["genre"]] = genres.get(event["genre"], 0) + 1
    mine = [value for dev, value in off if dev == device] if new_device else []
    mine = mine if len(mine) >= 2 else []
    login_ts, novel_login = memory.get("login", [None, 0.0])
    plays = memory.get("plays", [])
    recent = {dev for at, dev in plays if at > ts - 30 * MINUTE}
    starts = sum(1 for at, _ in plays if at > ts - 5 * MINUTE)
    searches = sum(1 for at in memory.get("searches", []) if at > ts - HOUR)
    return {
        "novel_login": novel_login if login_ts is not None and ts - login_ts < HOUR else 0.0,
        "new_device": new_device,
        "off_taste": round(sum(mine) / len(mine), 4) if mine else 0.0,
        "concurrent_devices": min(1.0, max(0, len(recent) - 2) / 2),
        "search_ratio": min(1.0, max(0, searches - 3 * len(plays) - 5) / 20),
        "play_rate": min(1.0, starts / 20),
    }


def ip_features(memory: Memory, event: dict[str, Any], ts: int | None = None) -> dict[str, float]:
    """Update an IP's ``memory`` with a login attempt from it; return its feature vector.

    >>> m, ok = {}, {"event_type": "login", "user_id": "u", "success": True, "timestamp": 0}
    >>> ip_features(m, ok)
    {'failed_accounts': 0.0, 'unknown_accounts': 0.0, 'failed_share': 0.0}
    """
    ts = event_time_ms(event) if ts is None else ts
    failed = not event.get("success")
    unknown = failed and event.get("failure_reason") == "unknown_user"
    attempts = [*_since(memory.get("attempts", []), ts, 6 * HOUR),
                [ts, event["user_id"], int(failed), int(unknown)]][-500:]  # fmt: skip
    memory["attempts"] = attempts
    failures = {user for _, user, bad, _ in attempts if bad}
    unknowns = {user for _, user, _, nobody in attempts if nobody}
    tries = len(attempts)
    return {
        "failed_accounts": min(1.0, max(0, len(failures) - 1) / 15),
        "unknown_accounts": min(1.0, len(unknowns) / 5),
        "failed_share": round(sum(a[2] for a in attempts) / tries, 4) if tries >= 5 else 0.0,
    }


def _trees(
    config: ModelConfig, names: tuple[str, ...], seed: int, window: int
) -> anomaly.HalfSpaceTrees:
    return anomaly.HalfSpaceTrees(
        n_trees=config.n_trees,
        height=config.height,
        window_size=window,
        limits={name: (0.0, 1.0) for name in names},
        seed=seed,
    )


Node = Any
#: Paths kept per walker before the cache starts over (distinct feature vectors are few:
#: most features are 0 for nearly every event; each path holds a node per level per tree).
MAX_PATHS = 5_000


class TreeWalk:
    """River's ``HalfSpaceTrees`` scored and taught at the cost of a dict lookup per event.

    Two facts of the algorithm make this exact, not an approximation:

    - a score reads only ``r_mass`` (the last window's masses), which no event changes until
      the window pivots: within a window, equal feature vectors get equal scores;
    - learning only adds 1 to ``l_mass`` along the vector's path, and nothing reads
      ``l_mass`` before the pivot (with every feature present): the additions can wait.

    So each distinct vector's path (its nodes in every tree: the trees' splits never change)
    is found once, its score once per window, and what it teaches is counted and added to
    River's nodes when the window pivots — or whenever River's object itself is looked at
    (:meth:`flush`: saving, or a River call). The scores, masses and pivots are River's to
    the bit (``tests/test_fraud/test_model.py`` compares them with River's two calls). A
    vector with a missing feature, trees not grown yet, or a River without the private fields
    shared here take River's own calls.
    """

    __slots__ = ("hst", "names", "paths", "pending", "scores")

    def __init__(self, hst: anomaly.HalfSpaceTrees, names: tuple[str, ...]) -> None:
        self.hst, self.names = hst, names
        self.paths: dict[tuple[float, ...], list[list[Node]]] = {}
        self.pending: dict[tuple[float, ...], int] = {}
        self.scores: dict[tuple[float, ...], float] = {}

    def flush(self) -> anomaly.HalfSpaceTrees:
        """Add what was taught since the last flush to River's nodes; River's object (the
        scores of this window are forgotten: the caller may teach it, and pivot it)."""
        self.scores = {}
        if self.pending:
            paths = self.paths
            for key, times in self.pending.items():
                for path in paths[key]:
                    for node in path:
                        node.l_mass += times
            self.pending = {}
        return self.hst

    def _key(self, x: dict[str, float]) -> tuple[float, ...] | None:
        if len(x) != len(self.names) or not self.hst.trees or not hasattr(self.hst, "_tree_nodes"):
            return None
        try:
            return tuple(map(x.__getitem__, self.names))
        except KeyError:
            return None

    def _path(self, key: tuple[float, ...], x: dict[str, float]) -> list[list[Node]]:
        path = self.paths.get(key)
        if path is None:
            if len(self.paths) >= MAX_PATHS:
                self.flush()
                self.paths = {}
            path = []
            for node in self.hst.trees:
                nodes = []
                for _ in range(self.hst.height):
                    nodes.append(node)
                    children = node.children
                    node = children[0] if x[node.feature] < node.threshold else children[1]
                nodes.append(node)
                path.append(nodes)
            self.paths[key] = path
        return path

    def _score(self, key: tuple[float, ...], x: dict[str, float]) -> float:
        score = self.scores.get(key)
        if score is None:
            hst = self.hst
            if hst._first_window:
                score = 0.0
            else:
                size_limit, total = 0.1 * hst.window_size, 0.0
                for nodes in self._path(key, x):
                    depth_pow = 1
                    for node in nodes:
                        r = node.r_mass
                        total += r * depth_pow
                        if r < size_limit:
                            break
                        depth_pow <<= 1
                score = 1 - total / hst._max_score
            self.scores[key] = score
        return score

    def score_one(self, x: dict[str, float]) -> float:
        """``hst.score_one(x)``."""
        key = self._key(x)
        if key is None:
            return float(self.flush().score_one(x))
        return self._score(key, x)

    def score_then_learn(self, x: dict[str, float]) -> float:
        """``hst.score_one(x)`` then ``hst.learn_one(x)``."""
        key = self._key(x)
        if key is None:
            hst = self.flush()
            score = float(hst.score_one(x))
            hst.learn_one(x)
            return score
        score = self._score(key, x)
        self._path(key, x)
        self.pending[key] = self.pending.get(key, 0) + 1
        hst = self.hst
        hst.counter += 1
        if hst.counter == hst.window_size:
            self.flush()
            for nodes in hst._tree_nodes:
                for each in nodes:
                    each.r_mass = each.l_mass
                    each.l_mass = 0
            hst._first_window = False
            hst.counter = 0
            self.scores = {}
        return score


@dataclass
class OnlineFraudModel:
    """HalfSpaceTrees over per-user and per-IP behaviour features, with drift detection on
    the user scores."""

    config: ModelConfig = field(default_factory=ModelConfig)
    learned: int = 0
    ip_learned: int = 0
    #: Events scored (every one ``process`` saw; ``learned`` counts those that taught).
    scored: int = 0
    drifts: int = 0
    last_drift_ms: int | None = None
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        config = self.config
        self._walk = TreeWalk(_trees(config, FEATURES, config.seed, config.window_size), FEATURES)
        self._ip_walk = TreeWalk(
            _trees(config, IP_FEATURES, config.seed + 1, config.ip_window_size), IP_FEATURES
        )
        self.drift = drift.ADWIN()
        #: Whether the last :meth:`process` / :meth:`process_ip` call's score reached its
        #: bar (after the warm-up), and its features.
        self.anomalous = False
        self.last_features: dict[str, float] = {}
        self.last_score = 0.0

    @property
    def trees(self) -> anomaly.HalfSpaceTrees:
        """The users' River trees, with everything taught so far in their nodes."""
        return self._walk.flush()

    @property
    def ip_trees(self) -> anomaly.HalfSpaceTrees:
        """The IPs' River trees, likewise."""
        return self._ip_walk.flush()

    def __getstate__(self) -> dict[str, Any]:
        # Pickled as River's objects, with every taught event in them (checkpoints written
        # before :class:`TreeWalk` existed load the same way).
        state = dict(self.__dict__)
        state["trees"] = state.pop("_walk").flush()
        state["ip_trees"] = state.pop("_ip_walk").flush()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self._walk = TreeWalk(state.pop("trees"), FEATURES)
        self._ip_walk = TreeWalk(state.pop("ip_trees"), IP_FEATURES)
        self.__dict__.update(state)

    # --- River's face ---------------------------------------------------------------
    def score_one(self, x: dict[str, float]) -> float:
        return self._walk.score_one(x)

    def learn_one(self, x: dict[str, float]) -> None:
        self.trees.learn_one(x)
        self.learned += 1

    def score_then_learn(self, x: dict[str, float]) -> float:
        """``score_one(x)`` then ``learn_one(x)``, at a dict lookup's cost (:class:`TreeWalk`)."""
        self.learned += 1
        return self._walk.score_then_learn(x)

    def _teaches(self, memory: Memory, ts: int, cap: int, window_ms: int) -> bool:
        """Whether this entity's event may teach the trees: at most ``cap`` per
        ``window_ms``, so one entity's flood (a bot, a stuffing source) cannot become the
        mass the trees call normal. Every event is scored either way."""
        taught = [t for t in memory.get("taught", []) if t > ts - window_ms]
        if len(taught) >= cap:
            memory["taught"] = taught
            return False
        memory["taught"] = [*taught, ts]
        return True

    # --- one event ------------------------------------------------------------------
    def process(self, memory: Memory, event: dict[str, Any], ts: int | None = None) -> float:
        """A user's event: features (updating ``memory``), score, then learn; the score.

        Sets :attr:`anomalous` when the score reaches ``alert_score`` after the warm-up. A
        failed login is scored but never anomalous: it is an attempt *on* the account, not
        the account's behaviour (the targets of a stuffing source are evidence, not suspects).
        """
        x = features(memory, event, ts)
        self.last_features = x
        self.scored += 1
        learned = self.learned
        when = ts if ts is not None else event_time_ms(event)
        if self._teaches(memory, when, self.config.teach_cap, 10 * MINUTE):
            score = self.score_then_learn(x)
        else:
            score = self._walk.score_one(x)
        self.last_score = score
        attempt = event["event_type"] == "login" and not event.get("success")
        self.anomalous = (
            not attempt
            and learned >= self.config.warmup_events
            and score >= self.config.alert_score
        )
        self.drift.update(score)
        if self.drift.drift_detected:
            self.drifts += 1
            self.last_drift_ms = when
        return score

    def process_ip(self, memory: Memory, event: dict[str, Any], ts: int | None = None) -> float:
        """An IP's login attempt: features (updating ``memory``), score, then learn."""
        x = ip_features(memory, event, ts)
        self.last_features = x
        learned = self.ip_learned
        when = ts if ts is not None else event_time_ms(event)
        if self._teaches(memory, when, self.config.ip_teach_cap, HOUR):
            self.ip_learned += 1
            score = self._ip_walk.score_then_learn(x)
        else:
            score = self._ip_walk.score_one(x)
        self.last_score = score
        self.anomalous = (
            learned >= self.config.ip_warmup_events and score >= self.config.ip_alert_score
        )
        return score

    # --- checkpoints ----------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model": "river.anomaly.HalfSpaceTrees (users), river.anomaly.HalfSpaceTrees (IPs)",
            "river_version": river.__version__,
            "features": list(FEATURES),
            "ip_features": list(IP_FEATURES),
            "config": self.config.__dict__,
            "events_scored": self.scored,
            "events_learned": self.learned,
            "ip_attempts_learned": self.ip_learned,
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
