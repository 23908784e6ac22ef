"""``train recs``, ``eval recs`` and ``import movielens``: the recommender's batch jobs.

Training reads ``watch-history`` whole (the compacted topic holds every user's latest
viewing of every movie they watched: the full matrix), or a data folder; tunes the
hyper-parameters on a validation split carved out of the training part of a time-based
split, scores the tuned model on the held-out latest movies next to the popularity
baseline, then fits the chosen hyper-parameters on *all* the data and saves that as a new
version with its provenance (data source and offsets, data range, hyper-parameters and how
they were chosen, held-out metrics, git SHA, package versions).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from movieflix_lab.config import Settings
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.jobs.results import Goal, jsonable
from movieflix_lab.lab.data import simulated_history
from movieflix_lab.recs.data import (
    INTERACTIONS,
    MOVIES,
    interactions_from_records,
    read_parquet_events,
)
from movieflix_lab.recs.evaluate import evaluate_recs
from movieflix_lab.recs.model import ALSParams, RecsModel
from movieflix_lab.recs.movielens import LAYOUTS, detect_layout, read_movielens, watch_records
from movieflix_lab.recs.store import save_version

__all__ = [
    "GOAL_RATIO",
    "MOVIELENS_GOAL_RATIO",
    "POPULARITY_GOAL_RATIO",
    "MovieLensImport",
    "RecsEvaluation",
    "TrainedModel",
    "import_movielens",
    "interactions_from_topic",
    "load_data",
    "recs_goals",
    "run_recs_eval",
    "train_recs",
]

logger = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]
#: ALS NDCG@10 over the best baseline's: on the simulated history (where planted tastes
#: exist) and on MovieLens (issue 21's goals; :mod:`movieflix_lab.recs.baselines`).
GOAL_RATIO = 2.0
MOVIELENS_GOAL_RATIO = 1.3
#: ALS NDCG@10 over plain popularity's on the simulated history (the first wave's goal).
POPULARITY_GOAL_RATIO = 2.0


@dataclass(frozen=True)
class TrainedModel:
    """A version ``train recs`` fitted and saved, with its provenance."""

    version: str
    path: str
    #: What ``provenance.json`` beside the model holds.
    provenance: dict[str, Any]
    users: int
    movies: int
    interactions: int
    hyperparameters: dict[str, Any]
    sample_users: list[str]

    @property
    def source(self) -> dict[str, Any]:
        return dict(self.provenance.get("source", {}))

    @property
    def fit_seconds(self) -> float:
        return float(self.provenance["fit_seconds"])

    @property
    def metrics(self) -> dict[str, Any]:
        """Held-out metrics (empty when there was too little data to hold any out)."""
        return dict(self.provenance.get("metrics", {}))

    @property
    def metrics_note(self) -> str | None:
        return self.provenance.get("metrics_note")

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": self.path,
            **self.provenance,
            "users": self.users,
            "movies": self.movies,
            "interactions": self.interactions,
            "hyperparameters": self.hyperparameters,
            "sample_users": self.sample_users,
        }


@dataclass(frozen=True)
class RecsEvaluation:
    """``eval recs``: ALS next to popularity on held-out latest movies."""

    #: :func:`~movieflix_lab.recs.evaluate.evaluate_recs`' metrics (``ndcg@10``, ...).
    metrics: dict[str, Any]
    #: Where the data came from.
    data: dict[str, Any]
    #: Judged on the simulated history only (its planted tastes make a goal meaningful).
    goals: list[Goal] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.metrics, "data": self.data, "goals": jsonable(self.goals)}


@dataclass(frozen=True)
class MovieLensImport:
    layout: str
    source: str
    out: str
    interactions: int
    users: int
    movies: int
    replayed: int = 0


def load_data(path: Path) -> tuple[pl.DataFrame, pl.DataFrame | None, dict[str, Any]]:
    """Interactions, movies (if known) and a description of ``path``: a MovieLens folder,
    an ``import movielens`` output, or a ``simulate --to parquet`` folder."""
    if not path.exists():
        raise MovieflixError(f"{path} does not exist")
    if (path / "interactions.parquet").is_file():
        movies_file = path / "movies.parquet"
        movies = pl.read_parquet(movies_file).cast(MOVIES) if movies_file.is_file() else None  # type: ignore[arg-type]
        interactions = pl.read_parquet(path / "interactions.parquet").cast(INTERACTIONS)  # type: ignore[arg-type]
        described: dict[str, Any] = {"kind": "interactions", "path": str(path)}
        # an `import movielens` output says which MovieLens it came from
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            manifest = json.loads((path / "manifest.json").read_text())
            described["movielens_layout"] = manifest["layout"]
        return interactions, movies, described
    if (path / "event_type=watch").is_dir():
        movies_file = path.parent / "movies.parquet"
        movies = (
            pl.read_parquet(movies_file).select(list(MOVIES)) if movies_file.is_file() else None
        )
        return read_parquet_events(path), movies, {"kind": "parquet-events", "path": str(path)}
    try:
        layout = detect_layout(path)
    except FileNotFoundError:
        known = ", ".join(f"{name} ({' + '.join(files)})" for name, files in LAYOUTS.items())
        raise MovieflixError(
            f"{path}: not a data folder I know — expected a MovieLens folder [{known}], "
            "an `import movielens` output (interactions.parquet) or a `simulate --to parquet` "
            "folder (event_type=watch/)"
        ) from None
    data = read_movielens(path)
    return (
        data.interactions,
        data.movies,
        {"kind": "movielens", "layout": layout, "path": str(path)},
    )


def interactions_from_topic(
    settings: Settings, progress: Progress | None = None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every watch record on ``watch-history`` now, and where they came from."""
    from movieflix_lab.kafka.catalog import WATCH_HISTORY
    from movieflix_lab.kafka.reader import read_topic

    frames: list[pl.DataFrame] = []
    snapshot = read_topic(
        settings, WATCH_HISTORY.name, lambda batch: frames.append(interactions_from_records(batch)),
        progress=(lambda done, total: progress("reading watch-history", done, total))
        if progress else None,
    )  # fmt: skip
    interactions = pl.concat(frames) if frames else pl.DataFrame(schema=INTERACTIONS)
    source = {
        "kind": "topic",
        "topic": WATCH_HISTORY.name,
        "bootstrap": settings.bootstrap_servers,
        "offsets": {str(p): o for p, o in sorted(snapshot.offsets.items())},
        "records": snapshot.records,
        "unreadable": snapshot.unreadable,
    }
    return interactions, source


def train_recs(
    settings: Settings,
    *,
    data: Path | None = None,
    movies_path: Path | None = None,
    params: ALSParams | None = None,
    tune: bool = True,
    grid: dict[str, Any] | None = None,
    progress: Progress | None = None,
    interactions: pl.DataFrame | None = None,
    source: dict[str, Any] | None = None,
) -> TrainedModel:
    """Fit and save a new version, with its provenance."""
    movies: pl.DataFrame | None = None
    if interactions is None:
        if data is not None:
            interactions, movies, source = load_data(data)
        else:
            interactions, source = interactions_from_topic(settings, progress)
    if movies_path is not None:
        movies = pl.read_parquet(movies_path).select(list(MOVIES))
    if interactions.is_empty():
        raise MovieflixError(
            "no watch-history to train on: run `movieflix-lab simulate` (or the demo) first, "
            "or give --data PATH"
        )
    params = params or ALSParams()
    metrics: dict[str, Any] | None = None
    if _splittable(interactions):
        metrics = evaluate_recs(
            interactions, movies, params=params, grid=grid, tune_params=tune,
            progress=progress,
        )  # fmt: skip
        params = ALSParams(**metrics["params"])
    started = time.perf_counter()
    model = RecsModel(params).fit(interactions, movies)
    fit_s = time.perf_counter() - started
    provenance = {
        "source": source or {},
        "fit_seconds": round(fit_s, 3),
        "hyperparameters_chosen_by": (
            "validation split (the latest 20% of each user's training movies)"
            if tune and metrics
            else "given"
        ),
        "tuning": (metrics or {}).get("tuning", []),
        "metrics": {k: v for k, v in (metrics or {}).items() if k not in ("tuning", "params")},
    }
    if metrics is None:
        provenance["metrics_note"] = TOO_LITTLE
    version = save_version(model, settings.recs_model_path, provenance)
    return TrainedModel(
        version=version,
        path=str(settings.recs_model_path / version),
        provenance=provenance,
        users=len(model.users),
        movies=len(model.movies),
        interactions=interactions.height,
        hyperparameters=params.as_dict(),
        sample_users=list(model.users.ids[:5]),
    )


TOO_LITTLE = "too little data for a held-out evaluation (needs 10 users with 5+ movies)"


def _splittable(interactions: pl.DataFrame, min_users: int = 10) -> bool:
    per_user = interactions.group_by("user_id").agg(pl.col("movie_id").n_unique().alias("n"))
    return per_user.filter(pl.col("n") >= 5).height >= min_users


def run_recs_eval(
    *,
    data: Path | None = None,
    seed: int = 42,
    users: int = 2000,
    days: float = 14.0,
    tune: bool = True,
    relevant: str = "liked",
    progress: Progress | None = None,
) -> RecsEvaluation:
    """``eval recs``: on ``data``, or by default a seeded simulated history; ``relevant``
    says which held-out movies are hits (``liked`` or ``all``)."""
    if data is not None:
        interactions, movies, source = load_data(data)
    else:
        if progress:
            progress("simulating", 0, 1)
        interactions, movies = simulated_history(seed=seed, users=users, days=days)
        source = {"kind": "simulated", "seed": seed, "users": users, "days": days}
    if not _splittable(interactions):
        raise MovieflixError(
            f"too little data to evaluate: need at least 10 users with 5 or more movies "
            f"({interactions['user_id'].n_unique()} users, {interactions.height} interactions)"
        )
    metrics = evaluate_recs(
        interactions, movies, tune_params=tune, relevant=relevant, progress=progress
    )
    return RecsEvaluation(metrics, source, recs_goals(metrics, source))


def recs_goals(metrics: dict[str, Any], source: dict[str, Any]) -> list[Goal]:
    """The goals judged on this data: ALS over the best baseline on the simulated history
    and on MovieLens; over plain popularity on the simulated history too."""
    best = f"NDCG@10 of ALS over the best baseline's ({metrics['best_baseline']})"
    popular = "NDCG@10 of ALS over plain popularity's"
    if source.get("kind") == "simulated":
        return [
            Goal.check(best, metrics["ndcg_ratio"], ">=", GOAL_RATIO, "x"),
            Goal.check(popular, metrics["popularity_ndcg_ratio"], ">=", POPULARITY_GOAL_RATIO, "x"),
        ]
    if source.get("kind") == "movielens" or source.get("movielens_layout"):
        return [Goal.check(best, metrics["ndcg_ratio"], ">=", MOVIELENS_GOAL_RATIO, "x")]
    return []


def import_movielens(
    settings: Settings,
    path: Path,
    *,
    out: Path | None = None,
    replay: bool = False,
    progress: Progress | None = None,
) -> MovieLensImport:
    """Read a MovieLens folder, write ``interactions.parquet`` + ``movies.parquet`` (for
    ``--data``), and optionally replay its viewings into ``watch-history`` in time order."""
    data = read_movielens(path)
    out = out or settings.data_dir / "movielens" / path.resolve().name
    out.mkdir(parents=True, exist_ok=True)
    data.interactions.write_parquet(out / "interactions.parquet")
    data.movies.write_parquet(out / "movies.parquet")
    summary = MovieLensImport(
        layout=data.layout,
        source=str(path),
        out=str(out),
        interactions=data.interactions.height,
        users=data.interactions["user_id"].n_unique(),
        movies=data.movies.height,
        replayed=_replay(settings, data.interactions, progress) if replay else 0,
    )
    (out / "manifest.json").write_text(json.dumps(jsonable(summary), indent=2) + "\n")
    return summary


def _replay(settings: Settings, interactions: pl.DataFrame, progress: Progress | None) -> int:
    from movieflix_lab.kafka.catalog import create_topics
    from movieflix_lab.kafka.event_writer import EventWriter

    create_topics(settings)
    writer = EventWriter(settings)
    failures: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    total = interactions.height
    sent = 0
    for record in watch_records(interactions):
        writer.send(record, delivered)
        sent += 1
        if progress and sent % 10_000 == 0:
            progress("replaying into watch-history", sent, total)
    remaining = writer.flush(60)
    if remaining or failures:
        raise MovieflixError(
            f"{remaining + len(failures)} viewings were not delivered to Kafka "
            f"({failures[0] if failures else 'flush timed out'})"
        )
    if progress:
        progress("replaying into watch-history", sent, total)
    return sent


class Refitter:
    """Refits the model from ``watch-history`` every ``interval_s`` in a background thread
    and saves it as a new version (``latest`` moves atomically; readers reload it). Keeps
    the hyper-parameters of the newest version (tuned by ``train recs``)."""

    def __init__(self, settings: Settings, interval_s: float) -> None:
        import threading

        self.settings = settings
        self.interval_s = interval_s
        self.versions: list[str] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recs-refit", daemon=True)

    def start(self) -> Refitter:
        if self.interval_s > 0:
            self._thread.start()
        return self

    def refit_once(self) -> str:
        from movieflix_lab.recs.store import latest_version

        root = self.settings.recs_model_path
        params = None
        newest = latest_version(root)
        if newest is not None and (root / newest / "provenance.json").is_file():
            chosen = json.loads((root / newest / "provenance.json").read_text())
            params = ALSParams(**chosen.get("hyperparameters", {}))
        result = train_recs(self.settings, params=params, tune=False)
        self.versions.append(result.version)
        logger.info("recs: refitted as version %s", result.version)
        return result.version

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refit_once()
            except Exception as exc:  # the next interval tries again; serving goes on
                self.failures += 1
                logger.warning("recs: background refit failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)
