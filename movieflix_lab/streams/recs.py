"""The recs app: keeps every touched user's ALS vector fresh from ``watch-history``.

implicit's ``partial_fit_users`` recomputes a user from their *full* row, so the app keeps
each user's history (per movie: viewings and the best completion) in Quix state — RocksDB
with a changelog, one memory per user, moving with its partition when instances are added.
A new consumer group starts from the beginning of the compacted topic, which rebuilds that
history for everyone. For each finished viewing the app recomputes the user's vector
against the current model version (the ``latest`` link, checked every
``reload_interval_s``) and publishes ``{user_id, model_version, factors, history, ...}`` to
``recs.user-updates`` (compacted, keyed by user). Serve apps follow that topic and apply the
vector (or, under another model version, recompute it from the history).

Movies not in the model yet are passed on with their genre (the serve app adds them to its
catalog and filters them as watched); they get vectors at the next full refit, which the
runner runs in the background every ``recs_refit_interval_s`` and publishes as a new
version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.state import State

from movieflix_lab.kafka.catalog import RECS_UPDATES, WATCH_HISTORY
from movieflix_lab.kafka.serde import EventDeserializer
from movieflix_lab.recs.confidence import Confidence
from movieflix_lab.recs.model import RecsModel
from movieflix_lab.recs.store import latest_version, load_version
from movieflix_lab.streams.fraud import UserKey

__all__ = ["ModelHolder", "RecsApp", "RecsOptions", "build", "history_values"]

logger = logging.getLogger(__name__)

#: A user's history keeps at most this many movies (the most recently watched).
MAX_HISTORY = 2000
STATE_TTL = timedelta(days=365)


@dataclass(frozen=True)
class RecsOptions:
    model_root: Path
    reload_interval_s: float = 2.0


def history_values(history: dict[str, list[Any]], confidence: Confidence) -> dict[str, float]:
    """A history (movie → [views, best completion, last ms, genre]) → the user's row."""
    movies = list(history)
    views = [history[m][0] for m in movies]
    completion = [history[m][1] for m in movies]
    values = confidence.values(completion, views)
    return {m: float(v) for m, v in zip(movies, values, strict=True)}


class ModelHolder:
    """The newest saved model version, reloaded when ``latest`` moves."""

    def __init__(self, root: Path, interval_s: float = 2.0) -> None:
        self.root = root
        self.interval_s = interval_s
        self.model: RecsModel | None = None
        self.version: str | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def current(self) -> tuple[RecsModel | None, str | None]:
        now = time.monotonic()
        if now - self._checked >= self.interval_s:
            self._checked = now
            with self._lock:
                newest = latest_version(self.root)
                if newest is not None and newest != self.version:
                    try:
                        self.model, _ = load_version(self.root, newest)
                        self.version = newest
                        logger.info("recs: model version %s loaded", newest)
                    except Exception as exc:  # a half-copied folder: try again next time
                        logger.warning("recs: cannot load model %s: %s", newest, exc)
        return self.model, self.version


@dataclass
class RecsApp:
    holder: ModelHolder
    clock: Callable[[], float] = time.time
    processed: int = 0
    confidence: Confidence = field(default_factory=Confidence)

    def on_watch(
        self, value: dict[str, Any], key: str, timestamp: int, headers: Any, state: State
    ) -> dict[str, Any]:
        history: dict[str, list[Any]] = state.get("history") or {}
        movie = value["movie_id"]
        seen = history.get(movie)
        completion = float(value["completion_ratio"])
        if seen is None:
            history[movie] = [1, completion, timestamp, value.get("genre")]
        else:
            seen[0] += 1
            seen[1] = max(seen[1], completion)
            seen[2] = max(seen[2], timestamp)
        if len(history) > MAX_HISTORY:
            for old in sorted(history, key=lambda m: history[m][2])[: len(history) - MAX_HISTORY]:
                del history[old]
        state.set("history", history, ttl=STATE_TTL)
        self.processed += 1
        model, version = self.holder.current()
        factors = None
        if model is not None:
            row = history_values(history, model.confidence)
            factors = [round(float(x), 6) for x in model.vectors({key: row})[0]]
        return {
            "user_id": value["user_id"],
            "model_version": version,
            "factors": factors,
            "history": {m: [h[0], h[1], h[3]] for m, h in history.items()},
            "movie_id": movie,
            "event_time_ms": timestamp,
            "updated_at_ms": int(self.clock() * 1000),
        }


def build(app: Application, options: RecsOptions) -> RecsApp:
    """Add the recs pipeline to ``app``."""
    recs = RecsApp(ModelHolder(options.model_root, options.reload_interval_s))
    recs.holder.current()
    watch = app.dataframe(
        app.topic(
            WATCH_HISTORY.name, key_deserializer=UserKey(), value_deserializer=EventDeserializer()
        )
    )
    updates = app.topic(RECS_UPDATES.name, key_serializer="str", value_serializer="json")
    watch = watch.filter(lambda value: value.get("event_type") == "watch")
    watch.apply(recs.on_watch, stateful=True, metadata=True).to_topic(updates)
    return recs
