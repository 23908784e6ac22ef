"""The serve app's recommender: the newest model version plus the online user updates.

A background thread watches ``models/recs/latest`` (every ``recs_reload_interval_s``) and
follows ``recs.user-updates`` from its beginning (compacted: the newest update per user).
An update computed under the serving version is applied as it is (its vector); one computed
under another version is recomputed from the user's history against the serving model.
A new version is loaded beside the serving one, every user with an online update is
recomputed on it, and then it replaces the serving one in a single assignment: a request
sees the old model or the new one, whole.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from movieflix_lab.config import Settings
from movieflix_lab.kafka.catalog import RECS_UPDATES
from movieflix_lab.kafka.tail import TopicTail
from movieflix_lab.recs.model import RecsModel
from movieflix_lab.recs.store import latest_version, load_version

__all__ = ["RecsService"]

logger = logging.getLogger(__name__)


def _row(history: dict[str, list[Any]], model: RecsModel) -> dict[str, float]:
    movies = list(history)
    values = model.confidence.values(
        [history[m][1] for m in movies], [history[m][0] for m in movies]
    )
    return {m: float(v) for m, v in zip(movies, values, strict=True)}


class RecsService:
    def __init__(self, settings: Settings, *, follow_updates: bool = True) -> None:
        self.settings = settings
        self.root = settings.recs_model_path
        self.model: RecsModel | None = None
        self.version: str | None = None
        self.provenance: dict[str, Any] = {}
        #: Each user's newest online history (movie → [views, completion, genre]).
        self.histories: dict[str, dict[str, list[Any]]] = {}
        self.applied = 0
        #: user → (event time of the viewing, wall-clock ms it was applied).
        self.last_applied: dict[str, tuple[int, float]] = {}
        self._follow = follow_updates
        self._tail: TopicTail | None = None
        self._apply_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recs-service", daemon=True)

    def start(self) -> RecsService:
        self.reload()
        self._thread.start()
        return self

    # --- model versions -----------------------------------------------------------------
    def reload(self) -> bool:
        """Load the newest version if it is not the serving one; True when swapped."""
        newest = latest_version(self.root)
        if newest is None or newest == self.version:
            return False
        try:
            model, provenance = load_version(self.root, newest)
        except Exception as exc:
            logger.warning("recs: cannot load model %s: %s", newest, exc)
            return False
        with self._apply_lock:
            self._refold(model, self.histories)
            self.model, self.version, self.provenance = model, newest, provenance
        logger.info("recs: serving model version %s", newest)
        return True

    @staticmethod
    def _refold(model: RecsModel, histories: dict[str, dict[str, list[Any]]]) -> None:
        for history in histories.values():
            for movie, entry in history.items():
                model.add_movie(movie, genre=entry[2] if len(entry) > 2 else None)
        if histories:
            model.update_users({user: _row(h, model) for user, h in histories.items()})

    # --- online updates -----------------------------------------------------------------
    def apply(self, update: dict[str, Any]) -> None:
        user = str(update["user_id"])
        history = update.get("history") or {}
        with self._apply_lock:
            self.histories[user] = history
            model = self.model
            if model is not None:
                for movie, entry in history.items():
                    model.add_movie(movie, genre=entry[2] if len(entry) > 2 else None)
                row = {user: _row(history, model)}
                factors = update.get("factors")
                if factors is not None and update.get("model_version") == self.version:
                    model.update_users(row, np.asarray([factors], dtype=np.float32))
                else:
                    model.update_users(row)
            self.applied += 1
            self.last_applied[user] = (int(update.get("event_time_ms", 0)), time.time() * 1000)

    def _start_tail(self) -> None:
        try:
            self._tail = TopicTail(
                self.settings, RECS_UPDATES.name, start="beginning", on_record=self.apply
            )
        except Exception as exc:  # no topic yet (the recs app creates it): retry later
            logger.info("recs: not following %s yet: %s", RECS_UPDATES.name, exc)

    def _run(self) -> None:
        interval = self.settings.recs_reload_interval_s
        while True:
            if self._follow and self._tail is None:
                self._start_tail()
            if self._stop.wait(interval):
                break
            self.reload()

    def caught_up(self, timeout: float = 60.0) -> bool:
        """Wait until the updates on ``recs.user-updates`` now have been applied."""
        deadline = time.monotonic() + timeout
        while self._tail is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return self._tail.caught_up(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._tail is not None:
            self._tail.stop()
