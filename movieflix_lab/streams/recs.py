"""The recs app: keeps every touched user's ALS vector fresh from ``watch-history``.

implicit's ``partial_fit_users`` recomputes a user from their *full* row, so the app keeps
each user's history (per movie: viewings and the best completion) in Quix state — RocksDB
with a changelog, one memory per user, moving with its partition when instances are added.
A new consumer group starts from the beginning of the compacted topic, which rebuilds that
history for everyone. The users a checkpoint touched get their vectors recomputed together, in one
call, against the current model version (the ``latest`` link, checked every
``reload_interval_s``), and each gets ``{user_id, model_version, factors, history, ...}``
in ``recs.user-updates`` (compacted, keyed by user). The app commits every
``COMMIT_INTERVAL_S`` at least, so a viewing is published within that. Serve apps follow
that topic and apply the vector (or, under another model version, recompute it from the
history).

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

import orjson
from quixstreams import Application
from quixstreams.sinks import BaseSink
from quixstreams.state import State

from movieflix_lab.kafka.catalog import RECS_UPDATES, WATCH_HISTORY
from movieflix_lab.kafka.serde import EventDeserializer
from movieflix_lab.recs.confidence import Confidence
from movieflix_lab.recs.model import RecsModel
from movieflix_lab.recs.store import latest_version, load_version
from movieflix_lab.streams.fraud import UserKey

__all__ = ["ModelHolder", "RecsApp", "RecsOptions", "UserUpdates", "build", "history_values"]

logger = logging.getLogger(__name__)

#: A user's history keeps at most this many movies (the most recently watched).
MAX_HISTORY = 2000
STATE_TTL = timedelta(days=365)
#: The state key of a user's history (orjson bytes; the bytes the key always had).
HISTORY = b'"history"'
#: The recs app commits (and so publishes the users it touched) at least this often.
COMMIT_INTERVAL_S = 0.25


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
    """The per-viewing step (the user's history, in state) and the batched vectors."""

    holder: ModelHolder
    clock: Callable[[], float] = time.time
    processed: int = 0
    confidence: Confidence = field(default_factory=Confidence)
    #: Users whose vectors were computed, and in how many model calls.
    published: int = 0
    batches: int = 0

    def on_watch(
        self, value: dict[str, Any], key: str, timestamp: int, headers: Any, state: State
    ) -> dict[str, Any]:
        """Add a viewing to the user's history; returns the user as touched (the batch's)."""
        raw = state.get_bytes(HISTORY)
        history: dict[str, list[Any]] = orjson.loads(raw) if raw is not None else {}
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
        state.set_bytes(HISTORY, orjson.dumps(history), ttl=STATE_TTL)
        self.processed += 1
        return {"user_id": value["user_id"], "key": key, "history": history, "movie_id": movie,
                "event_time_ms": timestamp}  # fmt: skip

    def updates(self, touched: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each touched user's update, their vectors from one model call for all of them."""
        model, version = self.holder.current()
        vectors = None
        if model is not None and touched:
            rows = {t["user_id"]: history_values(t["history"], model.confidence) for t in touched}
            vectors = [[round(x, 6) for x in row] for row in model.vectors(rows).tolist()]
            self.batches += 1
        now_ms = int(self.clock() * 1000)
        self.published += len(touched)
        return [
            {
                "user_id": t["user_id"],
                "model_version": version,
                "factors": None if vectors is None else vectors[i],
                "history": {m: [h[0], h[1], h[3]] for m, h in t["history"].items()},
                "movie_id": t["movie_id"],
                "event_time_ms": t["event_time_ms"],
                "updated_at_ms": now_ms,
            }
            for i, t in enumerate(touched)
        ]


class UserUpdates(BaseSink):
    """Publishes the touched users' updates in batches: at every checkpoint (before its
    commit, through the app's producer, so under exactly-once in its transaction) and
    whenever ``max_pending`` users wait.

    A user touched twice in a batch is published once, with both viewings in the history
    (the topic is compacted by user: only the newest update counts). implicit recomputes a
    batch of users in one call for about the cost of one user alone, which is what made
    the app's cost per viewing (`benchmarks/end_to_end.py` reports it per process).
    """

    def __init__(self, recs: RecsApp, topic: str, producer: Callable[[], Any],
                 max_pending: int = 512) -> None:  # fmt: skip
        super().__init__()
        self.recs, self.topic, self.max_pending = recs, topic, max_pending
        self._producer = producer
        self._pending: dict[str, dict[str, Any]] = {}

    def add(self, value: Any, key: Any, timestamp: int, headers: Any, topic: str,
            partition: int, offset: int) -> None:  # fmt: skip
        self._pending.pop(value["user_id"], None)  # re-insert: the batch keeps arrival order
        self._pending[value["user_id"]] = value
        if len(self._pending) >= self.max_pending:
            self._publish()

    def flush(self) -> None:
        self._publish()

    def _publish(self) -> None:
        if not self._pending:
            return
        out = self._producer()
        for update in self.recs.updates(list(self._pending.values())):
            out.produce(self.topic, key=update["user_id"].encode(), value=orjson.dumps(update),
                        timestamp=update["event_time_ms"])  # fmt: skip
        self._pending.clear()


def build(app: Application, options: RecsOptions) -> RecsApp:
    """Add the recs pipeline to ``app``."""
    recs = RecsApp(ModelHolder(options.model_root, options.reload_interval_s))
    recs.holder.current()
    watch = app.dataframe(
        app.topic(
            WATCH_HISTORY.name, key_deserializer=UserKey(), value_deserializer=EventDeserializer()
        )
    )
    app.topic(RECS_UPDATES.name)  # known to the app (created, checked) like any output
    watch = watch.filter(lambda value: value.get("event_type") == "watch")
    producer = app._processing_context  # private, as for the dead letters: its producer
    watch.apply(recs.on_watch, stateful=True, metadata=True).sink(
        UserUpdates(recs, RECS_UPDATES.name, lambda: producer.producer)
    )
    return recs
