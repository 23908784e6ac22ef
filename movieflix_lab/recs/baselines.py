"""The simple baselines ALS must beat, each tuned on the validation split like ALS.

Following Dacrema, Cremonesi & Jannach ("Are we really making much progress? A worrying
analysis of recent neural recommendation approaches", RecSys 2019), a model's gain is
reported over the *strongest* simple baseline, not over a weak one:

* ``popularity`` — how many users in the training part watched a movie (or liked it: the
  choice is tuned), the same list for everyone;
* ``recent_popularity`` — likes weighted by recency, halving every ``half_life_days``
  (tuned); this is what the served model falls back on for a cold user;
* ``item_knn`` — item-based nearest neighbours, keeping each movie's ``K`` nearest (tuned),
  by implicit's ``CosineRecommender`` on the liked confidences or on who watched what, or
  its ``BM25Recommender`` on who watched what (the similarity is tuned too).

Every baseline, like ALS, recommends only movies the user has not watched in the training
part.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import sparse

from movieflix_lab.recs.confidence import Confidence
from movieflix_lab.recs.data import aggregate, movies_from_interactions
from movieflix_lab.recs.model import IdMap

__all__ = ["BASELINES", "BASELINE_NAMES", "TrainMatrix", "fit_baseline", "train_matrix"]

Recommend = Callable[[str, int], list[str]]
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TrainMatrix:
    """The training part as the baselines read it."""

    users: IdMap
    movies: IdMap
    #: users x movies: 1 where the user watched the movie.
    watched: sparse.csr_matrix
    #: users x movies: the confidence of a like (``1 + alpha * w``), 0 for a dislike.
    liked: sparse.csr_matrix
    #: users x movies: the pair's last event time (epoch ms), where watched.
    last_ms: sparse.csr_matrix

    def seen(self, user: int) -> npt.NDArray[np.int32]:
        return self.watched.indices[self.watched.indptr[user] : self.watched.indptr[user + 1]]


def train_matrix(
    train: pl.DataFrame, movies: pl.DataFrame | None, confidence: Confidence | None = None
) -> TrainMatrix:
    confidence = confidence or Confidence()
    pairs = aggregate(train, confidence)
    movies = movies if movies is not None else movies_from_interactions(train)
    users = IdMap(pairs["user_id"].unique(maintain_order=True).to_list())
    ids = IdMap(movies["movie_id"].to_list())
    for movie in pairs["movie_id"].unique(maintain_order=True).to_list():
        ids.add(movie)
    rows = np.array([users.get(u) for u in pairs["user_id"].to_list()], dtype=np.int64)
    cols = np.array([ids.get(m) for m in pairs["movie_id"].to_list()], dtype=np.int64)
    shape = (len(users), len(ids))

    def matrix(values: Any) -> sparse.csr_matrix:
        built = sparse.csr_matrix((np.asarray(values, np.float64), (rows, cols)), shape=shape)
        built.eliminate_zeros()  # a stored 0 (a dislike in ``liked``) would be a NaN norm
        return built

    value = pairs["value"].to_numpy()
    return TrainMatrix(
        users, ids, matrix(np.ones(len(rows))), matrix(np.where(value > 0, value, 0.0)),
        matrix(pairs["last_ms"].to_numpy().astype(np.float64)),
    )  # fmt: skip


def _ranked(matrix: TrainMatrix, scores: npt.NDArray[np.float64]) -> Recommend:
    """The same ranked list for everyone, each user's watched movies left out."""
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > 0]
    ids = matrix.movies.ids

    def recommend(user_id: str, n: int) -> list[str]:
        user = matrix.users.get(user_id)
        seen = set(matrix.seen(user).tolist()) if user is not None else set()
        chosen: list[str] = []
        for index in order:
            if index not in seen:
                chosen.append(ids[index])
                if len(chosen) == n:
                    break
        return chosen

    return recommend


def popularity(matrix: TrainMatrix, *, count: str) -> Recommend:
    counted = matrix.watched if count == "watched" else (matrix.liked > 0).astype(np.float64)
    return _ranked(matrix, np.asarray(counted.sum(axis=0)).ravel())


def recent_popularity(matrix: TrainMatrix, *, half_life_days: float) -> Recommend:
    likes = matrix.last_ms.multiply(matrix.liked > 0).tocsr()
    newest = likes.data.max() if likes.nnz else 0.0
    weights = likes.copy()
    weights.data = np.exp2((likes.data - newest) / (half_life_days * DAY_MS))
    return _ranked(matrix, np.asarray(weights.sum(axis=0)).ravel())


def item_knn(matrix: TrainMatrix, *, similarity: str, K: int) -> Recommend:
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    items = matrix.liked if similarity == "cosine-liked" else matrix.watched
    knn = BM25Recommender(K=K) if similarity == "bm25-watched" else CosineRecommender(K=K)
    with warnings.catch_warnings():  # implicit's cosine fit converts its own COO to CSR
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        knn.fit(items.astype(np.float32).tocsr(), show_progress=False)
    ids = matrix.movies.ids

    def recommend(user_id: str, n: int) -> list[str]:
        user = matrix.users.get(user_id)
        if user is None:
            return []
        found, scores = knn.recommend(user, items[user], N=n, filter_already_liked_items=False,
                                      filter_items=matrix.seen(user))  # fmt: skip
        return [ids[i] for i, s in zip(found.tolist(), scores.tolist(), strict=True) if s > 0]

    return recommend


#: Each baseline's grid of hyper-parameters (tuned on the validation split) and its factory.
BASELINES: dict[str, tuple[Sequence[Mapping[str, Any]], Callable[..., Recommend]]] = {
    "popularity": ([{"count": "watched"}, {"count": "liked"}], popularity),
    "recent_popularity": (
        [{"half_life_days": d} for d in (1.0, 7.0, 30.0, 365.0)], recent_popularity,
    ),
    "item_knn": (
        [{"similarity": s, "K": k} for s in ("cosine-liked", "cosine-watched", "bm25-watched")
         for k in (20, 50, 100, 200)],
        item_knn,
    ),
}  # fmt: skip
BASELINE_NAMES = tuple(BASELINES)


def fit_baseline(name: str, matrix: TrainMatrix, params: Mapping[str, Any]) -> Recommend:
    """Baseline ``name`` fitted on ``matrix`` with ``params`` (one point of its grid)."""
    return BASELINES[name][1](matrix, **params)
