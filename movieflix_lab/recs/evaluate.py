"""Offline evaluation: a time-based split, ranking metrics, the baselines, tuning.

The split holds out each user's *latest* movies (by when they first watched them): the
model sees the past and is asked for the future, as in production. By default only
held-out movies the user liked (:meth:`Confidence.liked`) count as hits
(``relevant="liked"``); ``relevant="all"`` counts every held-out movie, as most published
protocols on MovieLens do. Tuning splits the training part the same way again (validation)
and never looks at the test part.

ALS is scored next to three simple baselines (:mod:`~movieflix_lab.recs.baselines`), each
tuned on the same validation split; ``ndcg_ratio`` is ALS over the *best* of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from movieflix_lab.recs.baselines import BASELINES, TrainMatrix, fit_baseline, train_matrix
from movieflix_lab.recs.confidence import Confidence
from movieflix_lab.recs.data import aggregate
from movieflix_lab.recs.model import ALSParams, RecsModel

__all__ = [
    "DEFAULT_GRID",
    "RELEVANT",
    "Split",
    "evaluate_recs",
    "per_genre",
    "popularity_model",
    "ranking_metrics",
    "score_model",
    "temporal_split",
    "tune",
    "tune_baseline",
]

#: The hyper-parameters tried on the validation split (factors x regularization x alpha).
DEFAULT_GRID: dict[str, Sequence[Any]] = {
    "factors": (16, 32, 64),
    "regularization": (0.05, 1.0, 10.0),
    "alpha": (2.0, 8.0),
}
#: Which held-out movies count as hits.
RELEVANT = ("liked", "all")


@dataclass(frozen=True)
class Split:
    train: pl.DataFrame
    test: pl.DataFrame
    #: Per user: the held-out movies that count as hits.
    relevant: dict[str, set[str]]


def temporal_split(
    interactions: pl.DataFrame,
    *,
    holdout: float = 0.2,
    min_movies: int = 5,
    confidence: Confidence | None = None,
    relevant: str = "liked",
) -> Split:
    """Hold out each user's latest ``holdout`` share of movies (users with at least
    ``min_movies``; the others stay whole in the training part). The hits are the held-out
    movies the user liked (``relevant="liked"``) or all of them (``"all"``)."""
    if relevant not in RELEVANT:
        raise ValueError(f"relevant must be one of {', '.join(RELEVANT)}, not {relevant!r}")
    confidence = confidence or Confidence()
    first = (
        interactions.group_by("user_id", "movie_id")
        .agg(pl.col("ts_ms").min().alias("first_ms"))
        .sort("user_id", "first_ms", "movie_id")
        .with_columns(
            pl.col("first_ms").rank("ordinal").over("user_id").alias("order"),
            pl.len().over("user_id").alias("movies"),
        )
    )
    held = first.filter(
        (pl.col("movies") >= min_movies)
        & (pl.col("order") > pl.col("movies") - (pl.col("movies") * holdout).ceil())
    ).select("user_id", "movie_id")
    test = interactions.join(held, on=["user_id", "movie_id"], how="semi")
    train = interactions.join(held, on=["user_id", "movie_id"], how="anti")
    pairs = aggregate(test, confidence)
    if relevant == "liked":
        pairs = pairs.filter(pl.Series(confidence.liked(pairs["strength"].to_numpy())))
    hits: dict[str, set[str]] = {}
    for user, movie in zip(pairs["user_id"].to_list(), pairs["movie_id"].to_list(), strict=True):
        hits.setdefault(user, set()).add(movie)
    return Split(train, test, hits)


def ranking_metrics(
    recommended: Mapping[str, Sequence[str]],
    relevant: Mapping[str, set[str]],
    *,
    k: int = 10,
    catalog_size: int,
) -> dict[str, float]:
    """precision@k, recall@k, NDCG@k (binary gains), MAP@k and catalog coverage, averaged
    over the users with at least one relevant movie."""
    precision = recall = ndcg = ap = 0.0
    shown: set[str] = set()
    users = [u for u in relevant if relevant[u]]
    for user in users:
        items = list(recommended.get(user, ()))[:k]
        shown.update(items)
        truth = relevant[user]
        hits = [1.0 if item in truth else 0.0 for item in items]
        found = sum(hits)
        precision += found / k
        recall += found / len(truth)
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(truth))))
        ndcg += dcg / ideal
        running = score = 0.0
        for i, h in enumerate(hits):
            if h:
                running += 1
                score += running / (i + 1)
        ap += score / min(k, len(truth))
    count = max(1, len(users))
    return {
        f"precision@{k}": precision / count,
        f"recall@{k}": recall / count,
        f"ndcg@{k}": ndcg / count,
        f"map@{k}": ap / count,
        "coverage": len(shown) / max(1, catalog_size),
        "users": float(len(users)),
    }


def score_model(
    recommend: Callable[[str, int], Iterable[str]],
    split: Split,
    *,
    k: int = 10,
    catalog_size: int,
) -> dict[str, float]:
    recommended = {user: list(recommend(user, k)) for user in split.relevant}
    return ranking_metrics(recommended, split.relevant, k=k, catalog_size=catalog_size)


def popularity_model(model: RecsModel) -> Callable[[str, int], list[str]]:
    """The baseline: the fitted model's recent popularity, watched movies filtered."""

    def recommend(user: str, n: int) -> list[str]:
        seen = model._seen(model.users.get(user), user)
        return [r.movie_id for r in model.popular(n, exclude=seen)]

    return recommend


def als_model(model: RecsModel) -> Callable[[str, int], list[str]]:
    return lambda user, n: [r.movie_id for r in model.recommend(user, n)]


def tune(
    train: pl.DataFrame,
    movies: pl.DataFrame | None,
    *,
    base: ALSParams | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    k: int = 10,
    holdout: float = 0.2,
    relevant: str = "liked",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[ALSParams, list[dict[str, Any]]]:
    """The grid point with the best validation NDCG@k (the latest ``holdout`` of ``train``)."""
    base = base or ALSParams()
    grid = grid or DEFAULT_GRID
    validation = temporal_split(train, holdout=holdout, relevant=relevant)
    names = list(grid)
    points = [dict(zip(names, values, strict=True)) for values in _product(grid, names)]
    results = []
    best: tuple[float, ALSParams] | None = None
    for done, point in enumerate(points):
        params = replace(base, **point)
        model = RecsModel(params).fit(validation.train, movies)
        size = len(model.movies)
        ndcg = score_model(als_model(model), validation, k=k, catalog_size=size)[f"ndcg@{k}"]
        results.append({**point, f"validation_ndcg@{k}": round(ndcg, 5)})
        if best is None or ndcg > best[0]:
            best = (ndcg, params)
        if progress:
            progress(done + 1, len(points))
    assert best is not None
    return best[1], results


def tune_baseline(
    name: str, validation: Split, matrix: TrainMatrix, *, k: int = 10
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Baseline ``name``'s grid point with the best validation NDCG@k (as :func:`tune`);
    ``matrix`` is ``validation.train``'s (:func:`~movieflix_lab.recs.baselines.train_matrix`),
    built once for every baseline."""
    results = []
    best: tuple[float, dict[str, Any]] | None = None
    for point in BASELINES[name][0]:
        recommend = fit_baseline(name, matrix, point)
        ndcg = score_model(recommend, validation, k=k, catalog_size=len(matrix.movies))[f"ndcg@{k}"]
        results.append({**point, f"validation_ndcg@{k}": round(ndcg, 5)})
        if best is None or ndcg > best[0]:
            best = (ndcg, dict(point))
    assert best is not None
    return best[1], results


def _product(grid: Mapping[str, Sequence[Any]], names: list[str]) -> list[tuple[Any, ...]]:
    import itertools

    return list(itertools.product(*(grid[n] for n in names)))


def evaluate_recs(
    interactions: pl.DataFrame,
    movies: pl.DataFrame | None = None,
    *,
    params: ALSParams | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    tune_params: bool = True,
    k: int = 10,
    holdout: float = 0.2,
    relevant: str = "liked",
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Tune on validation (optional), fit on the training part, score ALS and each
    baseline on the held-out latest movies. Returns the report: ALS's metrics
    (``ndcg@10``, ...), each baseline's under ``baselines`` (with the hyper-parameters
    its tuning chose), ``best_baseline`` and ``ndcg_ratio`` (ALS over the best baseline);
    ``popularity_ndcg@10`` and the like are plain popularity's.

    Untuned (``tune_params=False``: a quick look, or a model trained with given
    hyper-parameters), ALS's defaults are scored against plain popularity alone: tuning
    the other baselines while ALS is not would be no fairer than comparing an untuned
    baseline with a tuned ALS."""
    split = temporal_split(interactions, holdout=holdout, relevant=relevant)
    tuning: list[dict[str, Any]] = []
    chosen = params or ALSParams()
    if tune_params:
        chosen, tuning = tune(
            split.train, movies, base=chosen, grid=grid, k=k, holdout=holdout, relevant=relevant,
            progress=(lambda d, t: progress("tuning ALS", d, t)) if progress else None,
        )  # fmt: skip
    started = time.perf_counter()
    model = RecsModel(chosen).fit(split.train, movies)
    fit_s = time.perf_counter() - started
    size = len(model.movies)
    als = score_model(als_model(model), split, k=k, catalog_size=size)
    report: dict[str, Any] = {key: round(value, 5) for key, value in als.items() if key != "users"}
    baselines: dict[str, dict[str, Any]] = {}
    matrix = train_matrix(split.train, movies)
    compared = list(BASELINES) if tune_params else ["popularity"]
    if tune_params:
        validation = temporal_split(split.train, holdout=holdout, relevant=relevant)
        validation_matrix = train_matrix(validation.train, movies)
    for done, name in enumerate(compared):
        if progress:
            progress("tuning the baselines", done, len(compared))
        if tune_params:
            chosen_point, grid_scores = tune_baseline(name, validation, validation_matrix, k=k)
        else:
            chosen_point, grid_scores = dict(BASELINES[name][0][0]), []
        scored = score_model(fit_baseline(name, matrix, chosen_point), split, k=k,
                             catalog_size=size)  # fmt: skip
        baselines[name] = {
            **{key: round(v, 5) for key, v in scored.items() if key != "users"},
            "params": chosen_point,
            "tuning": grid_scores,
        }
    if progress:
        progress("tuning the baselines", len(compared), len(compared))
    best = max(baselines, key=lambda name: baselines[name][f"ndcg@{k}"])
    report.update(
        {f"popularity_{key}": v for key, v in baselines["popularity"].items()
         if key not in ("params", "tuning")}
    )  # fmt: skip
    base = baselines[best][f"ndcg@{k}"]
    popular = baselines["popularity"][f"ndcg@{k}"]
    report.update(
        {
            "baselines": baselines,
            "best_baseline": best,
            f"best_baseline_ndcg@{k}": base,
            "ndcg_ratio": round(report[f"ndcg@{k}"] / base, 3) if base else None,
            "popularity_ndcg_ratio": round(report[f"ndcg@{k}"] / popular, 3) if popular else None,
            "relevant": relevant,
            "k": k,
            "users_evaluated": int(als["users"]),
            "users": interactions["user_id"].n_unique(),
            "movies": size,
            "interactions": interactions.height,
            "train_interactions": split.train.height,
            "test_interactions": split.test.height,
            "holdout": holdout,
            "params": chosen.as_dict(),
            "tuned": tune_params,
            "tuning": tuning,
            "fit_seconds": round(fit_s, 3),
        }
    )
    return report


def per_genre(
    model: RecsModel,
    split: Split,
    k: int = 10,
    baseline: Callable[[str, int], Iterable[str]] | None = None,
) -> pl.DataFrame:
    """NDCG@k of ALS and of ``baseline`` (default: the model's recent popularity) per genre
    of the held-out movies (for notebooks)."""
    baseline = baseline or popularity_model(model)
    rows = []
    genre_of = dict(zip(model.movies.ids, model.catalog.genres, strict=False))
    for genre in model.genres():
        relevant = {
            u: {m for m in ms if genre_of.get(m) == genre} for u, ms in split.relevant.items()
        }
        sub = replace(split, relevant={u: ms for u, ms in relevant.items() if ms})
        if not sub.relevant:
            continue
        als = score_model(als_model(model), sub, k=k, catalog_size=len(model.movies))
        base = score_model(baseline, sub, k=k, catalog_size=len(model.movies))
        rows.append({"genre": genre, "users": int(als["users"]), "als_ndcg": als[f"ndcg@{k}"],
                     "baseline_ndcg": base[f"ndcg@{k}"]})  # fmt: skip
    return pl.DataFrame(rows)
