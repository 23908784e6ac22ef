"""The recommender: implicit's ALS behind string ids, with recent popularity for cold starts.

:class:`RecsModel` has implicit's face — ``fit``, ``recommend``, ``save``, ``load`` — but
speaks movie and user *ids*: the id ↔ row mapping (:class:`IdMap`) lives here, out of the
numeric core, and grows when new users and movies arrive online. Everything runs on a
DataFrame in a notebook; nothing here knows Kafka.

Online: :meth:`RecsModel.update_users` recomputes users' vectors from their *full* rows
(implicit's ``partial_fit_users``), adding new users; movies first seen online join the
catalog and the "already watched" filter at once and get a vector at the next refit.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import sparse

from movieflix_lab.recs.confidence import Confidence
from movieflix_lab.recs.data import aggregate, movies_from_interactions

__all__ = ["ALSParams", "IdMap", "Recommendation", "RecsModel"]

FORMAT_VERSION = 1
#: Popularity is a count of likes decayed with this half-life (from the newest event).
POPULARITY_HALF_LIFE_MS = 7 * 24 * 3600 * 1000


class IdMap:
    """String ids ↔ dense row numbers; only grows."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self.ids: list[str] = []
        self._index: dict[str, int] = {}
        for id_ in ids:
            self.add(id_)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._index

    def get(self, id_: str) -> int | None:
        return self._index.get(id_)

    def add(self, id_: str) -> int:
        index = self._index.get(id_)
        if index is None:
            index = self._index[id_] = len(self.ids)
            self.ids.append(id_)
        return index


@dataclass(frozen=True)
class ALSParams:
    factors: int = 64
    regularization: float = 0.05
    iterations: int = 15
    #: The confidence scale of :class:`Confidence` (implicit's own ``alpha`` stays 1).
    alpha: float = 4.0
    seed: int = 42

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Recommendation:
    movie_id: str
    title: str
    genre: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"movie_id": self.movie_id, "title": self.title, "genre": self.genre,
                "score": self.score}  # fmt: skip


@dataclass
class _Catalog:
    titles: list[str] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)


def _als(params: ALSParams) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(
        factors=params.factors,
        regularization=params.regularization,
        iterations=params.iterations,
        random_state=params.seed,
        calculate_training_loss=False,
    )


class RecsModel:
    """implicit ALS over id-mapped users and movies; see the module docstring."""

    def __init__(self, params: ALSParams | None = None, confidence: Confidence | None = None):
        self.params = params or ALSParams()
        self.confidence = confidence or Confidence(alpha=self.params.alpha)
        self.users = IdMap()
        self.movies = IdMap()
        self.catalog = _Catalog()
        self.als: Any = None
        self.user_items: sparse.csr_matrix = sparse.csr_matrix((0, 0), dtype=np.float32)
        self.popularity: npt.NDArray[np.float64] = np.zeros(0)
        self.genre_items: dict[str, npt.NDArray[np.int64]] = {}
        #: Rows replaced online (full rows: movie id → value), newer than ``user_items``.
        self.fresh: dict[str, dict[str, float]] = {}
        self.data_range_ms: tuple[int, int] | None = None
        self.interactions = 0
        self._lock = threading.Lock()

    # --- fitting ------------------------------------------------------------------------
    def fit(self, interactions: pl.DataFrame, movies: pl.DataFrame | None = None) -> RecsModel:
        """Fit on an interactions frame (see :mod:`movieflix_lab.recs.data`)."""
        import implicit.cpu.als  # noqa: F401  (loads its BLAS before the limit below)
        from threadpoolctl import threadpool_limits

        if interactions.is_empty():
            raise ValueError("no interactions to fit on")
        pairs = aggregate(interactions, self.confidence)
        movies = movies if movies is not None else movies_from_interactions(interactions)
        self.users = IdMap(pairs["user_id"].unique(maintain_order=True).to_list())
        self.movies = IdMap(movies["movie_id"].to_list())
        titles = dict(zip(movies["movie_id"].to_list(), movies["title"].to_list(), strict=True))
        genres = dict(zip(movies["movie_id"].to_list(), movies["genre"].to_list(), strict=True))
        seen_genre = dict(zip(pairs["movie_id"].to_list(), pairs["genre"].to_list(), strict=True))
        for movie in pairs["movie_id"].unique(maintain_order=True).to_list():
            if movie not in self.movies:
                self.movies.add(movie)
        self.catalog = _Catalog(
            [titles.get(m) or m for m in self.movies.ids],
            [genres.get(m) or seen_genre.get(m) or "unknown" for m in self.movies.ids],
        )
        rows = np.array([self.users.get(u) for u in pairs["user_id"].to_list()])
        cols = np.array([self.movies.get(m) for m in pairs["movie_id"].to_list()])
        values = pairs["value"].to_numpy().astype(np.float32)
        shape = (len(self.users), len(self.movies))
        self.user_items = sparse.csr_matrix((values, (rows, cols)), shape=shape)
        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
            self.als = _als(self.params)
            self.als.fit(self.user_items, show_progress=False)
        first, last = int(pairs["first_ms"].min()), int(pairs["last_ms"].max())  # type: ignore[arg-type]
        self.data_range_ms = (first, last)
        self.interactions = interactions.height
        liked = pairs.filter(pl.col("strength") >= self.confidence.abandon_below)
        decay = np.exp2((liked["last_ms"].to_numpy() - last) / POPULARITY_HALF_LIFE_MS)
        liked_cols = np.array([self.movies.get(m) for m in liked["movie_id"].to_list()], int)
        self.popularity = np.bincount(liked_cols, weights=decay, minlength=len(self.movies)).astype(
            np.float64
        )
        self.fresh = {}
        self._index_genres()
        return self

    def _index_genres(self) -> None:
        genres = np.array(self.catalog.genres, dtype=object)
        self.genre_items = {
            g: np.flatnonzero(genres == g) for g in sorted(set(self.catalog.genres))
        }

    # --- reading ------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.als is not None

    def _seen(self, user: int | None, user_id: str) -> npt.NDArray[np.int64]:
        fresh = self.fresh.get(user_id)
        if fresh is not None:
            return np.array([i for m in fresh if (i := self.movies.get(m)) is not None], int)
        if user is None or user >= self.user_items.shape[0]:
            return np.zeros(0, int)
        start, end = self.user_items.indptr[user], self.user_items.indptr[user + 1]
        return np.asarray(self.user_items.indices[start:end], int)

    def _candidates(self, genre: str | None) -> npt.NDArray[np.int64] | None:
        if genre is None:
            return None
        return self.genre_items.get(genre, np.zeros(0, int))

    def _top(
        self,
        scores: npt.NDArray[np.floating[Any]],
        n: int,
        candidates: npt.NDArray[np.int64] | None,
        exclude: npt.NDArray[np.int64],
    ) -> list[Recommendation]:
        """The ``n`` best of ``scores`` (a fresh array: modified in place)."""
        if exclude.size:
            scores[exclude] = -np.inf
        if candidates is not None:
            allowed = scores[candidates]
            finite = np.isfinite(allowed)
            index, allowed = candidates[finite], allowed[finite]
            available = allowed.shape[0]
        else:
            index, allowed = None, scores
            available = scores.shape[0] - exclude.size
        n = min(n, available)
        if n <= 0:
            return []
        top = np.sort(np.argpartition(allowed, allowed.shape[0] - n)[-n:])
        top = top[np.argsort(-allowed[top], kind="stable")]  # ties: the lower index first
        chosen = index[top] if index is not None else top
        ids, titles, genres = self.movies.ids, self.catalog.titles, self.catalog.genres
        return [
            Recommendation(ids[i], titles[i], genres[i], s)
            for i, s in zip(chosen.tolist(), np.round(allowed[top], 6).tolist(), strict=True)
        ]

    def user_factors(self, user_id: str) -> npt.NDArray[np.float32] | None:
        user = self.users.get(user_id)
        if self.als is None or user is None or user >= self.als.user_factors.shape[0]:
            return None
        vector = self.als.user_factors[user]
        return None if not vector.any() else vector

    def recommend(
        self,
        user_id: str,
        n: int = 10,
        *,
        genre: str | None = None,
        filter_watched: bool = True,
    ) -> list[Recommendation]:
        """The ``n`` best movies for ``user_id`` (optionally of one ``genre``); a user the
        model has no vector for gets :meth:`popular` (see there)."""
        return self.recommend_with_strategy(user_id, n, genre=genre, filter_watched=filter_watched)[
            0
        ]

    def recommend_with_strategy(
        self,
        user_id: str,
        n: int = 10,
        *,
        genre: str | None = None,
        filter_watched: bool = True,
    ) -> tuple[list[Recommendation], str]:
        """:meth:`recommend`, and which strategy answered: ``als`` or ``popularity``."""
        self._require_fit()
        user = self.users.get(user_id)
        factors = self.als.user_factors
        vector = factors[user] if user is not None and user < factors.shape[0] else None
        seen = self._seen(user, user_id) if filter_watched else np.zeros(0, int)
        if vector is None or not vector.any():
            return self.popular(n, genre=genre, exclude=seen, user_id=user_id), "popularity"
        scores = self.als.item_factors @ vector
        if scores.shape[0] < len(self.movies):  # movies seen online, not yet fitted
            scores = np.concatenate([scores, np.zeros(len(self.movies) - scores.shape[0])])
        return self._top(scores, n, self._candidates(genre), seen), "als"

    def is_cold(self, user_id: str) -> bool:
        return self.user_factors(user_id) is None

    def popular(
        self,
        n: int = 10,
        *,
        genre: str | None = None,
        exclude: npt.NDArray[np.int64] | None = None,
        user_id: str | None = None,
    ) -> list[Recommendation]:
        """Recent popularity; genre-aware: within ``genre`` if given, else weighted by the
        genres ``user_id`` has watched (any signal at all), else overall."""
        self._require_fit()
        scores = self.popularity.astype(np.float64)
        if scores.shape[0] < len(self.movies):
            scores = np.concatenate([scores, np.zeros(len(self.movies) - scores.shape[0])])
        if genre is None and user_id is not None:
            watched = self.fresh.get(user_id, {})
            counts: dict[str, int] = {}
            for movie in watched:
                index = self.movies.get(movie)
                if index is not None:
                    counts[self.catalog.genres[index]] = (
                        counts.get(self.catalog.genres[index], 0) + 1
                    )
            if counts:
                weights = np.array([counts.get(g, 0) + 0.1 for g in self.catalog.genres])
                scores = scores * weights
        excluded = exclude if exclude is not None else np.zeros(0, int)
        return self._top(scores, n, self._candidates(genre), excluded)

    def similar(self, movie_id: str, n: int = 10) -> list[Recommendation]:
        """The ``n`` movies whose vectors are closest (cosine) to ``movie_id``'s."""
        self._require_fit()
        item = self.movies.get(movie_id)
        if item is None:
            raise KeyError(movie_id)
        factors = self.als.item_factors
        if item >= factors.shape[0] or not factors[item].any():
            return []
        norms = np.linalg.norm(factors, axis=1)
        norms[norms == 0] = np.inf
        scores = (factors @ factors[item]) / (norms * norms[item])
        if scores.shape[0] < len(self.movies):
            scores = np.concatenate([scores, np.zeros(len(self.movies) - scores.shape[0])])
        return self._top(scores, n, None, np.array([item]))

    def genres(self) -> list[str]:
        return list(self.genre_items)

    # --- online -------------------------------------------------------------------------
    def add_movie(self, movie_id: str, genre: str | None = None, title: str | None = None) -> int:
        """A movie first seen online: in the catalog now, with a vector after a refit."""
        index = self.movies.get(movie_id)
        if index is not None:
            return index
        with self._lock:
            index = self.movies.add(movie_id)
            self.catalog.titles.append(title or movie_id)
            self.catalog.genres.append(genre or "unknown")
            self._index_genres()
        return index

    def rows(self, histories: Mapping[str, Mapping[str, float]]) -> sparse.csr_matrix:
        """Full rows (movie id → value) as a matrix over the fitted movies."""
        fitted = self.als.item_factors.shape[0]
        data, indices, indptr = [], [], [0]
        for history in histories.values():
            for movie, value in history.items():
                index = self.movies.get(movie)
                if index is not None and index < fitted:
                    indices.append(index)
                    data.append(value)
            indptr.append(len(indices))
        return sparse.csr_matrix(
            (np.array(data, np.float32), np.array(indices, np.int32), np.array(indptr)),
            shape=(len(histories), fitted),
        )

    def vectors(self, histories: Mapping[str, Mapping[str, float]]) -> npt.NDArray[np.float32]:
        """Users' vectors from their full rows, computed against this model's movie vectors
        (implicit's ``recalculate_user``; nothing is stored)."""
        self._require_fit()
        if not histories:
            return np.zeros((0, self.params.factors), np.float32)
        return np.atleast_2d(
            self.als.recalculate_user(np.arange(len(histories)), self.rows(histories))
        )

    def update_users(
        self,
        histories: Mapping[str, Mapping[str, float]],
        vectors: npt.NDArray[np.float32] | None = None,
    ) -> None:
        """Replace users' rows with their full histories and recompute their vectors
        (``partial_fit_users``), or set ``vectors`` computed elsewhere for this model."""
        self._require_fit()
        if not histories:
            return
        computed = self.vectors(histories) if vectors is None else np.atleast_2d(vectors)
        with self._lock:
            ids = np.array([self.users.add(u) for u in histories])
            factors = self.als.user_factors
            if ids.max() >= factors.shape[0]:
                grown = np.zeros((int(ids.max()) + 1, factors.shape[1]), dtype=factors.dtype)
                grown[: factors.shape[0]] = factors
                grown[ids] = computed
                self.als.user_factors = grown
            else:
                factors[ids] = computed
            self.als._user_norms = None
            self.als._XtX = None
            for user_id, history in histories.items():
                self.fresh[user_id] = dict(history)

    # --- persistence --------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """``als.npz`` (implicit's own format), ``matrix.npz`` and ``model.json``."""
        self._require_fit()
        folder.mkdir(parents=True, exist_ok=True)
        self.als.save(str(folder / "als.npz"))
        sparse.save_npz(folder / "matrix.npz", self.user_items.tocsr())
        np.save(folder / "popularity.npy", self.popularity)
        meta = {
            "format_version": FORMAT_VERSION,
            "params": self.params.as_dict(),
            "confidence": self.confidence.as_dict(),
            "users": self.users.ids[: self.user_items.shape[0]],
            "movies": self.movies.ids[: self.user_items.shape[1]],
            "titles": self.catalog.titles[: self.user_items.shape[1]],
            "genres": self.catalog.genres[: self.user_items.shape[1]],
            "data_range_ms": list(self.data_range_ms) if self.data_range_ms else None,
            "interactions": self.interactions,
        }
        (folder / "model.json").write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, folder: Path) -> RecsModel:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        meta_path = folder / "model.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} holds no recommendation model (no model.json)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{folder}: model format {meta.get('format_version')}, this version reads "
                f"{FORMAT_VERSION}; retrain with `movieflix-lab train recs`"
            )
        model = cls(ALSParams(**meta["params"]), Confidence(**meta["confidence"]))
        with threadpool_limits(1, "blas"):
            model.als = AlternatingLeastSquares.load(str(folder / "als.npz"))
        model.user_items = sparse.load_npz(folder / "matrix.npz").tocsr()
        model.popularity = np.load(folder / "popularity.npy")
        model.users = IdMap(meta["users"])
        model.movies = IdMap(meta["movies"])
        model.catalog = _Catalog(list(meta["titles"]), list(meta["genres"]))
        model.data_range_ms = tuple(meta["data_range_ms"]) if meta["data_range_ms"] else None
        model.interactions = meta["interactions"]
        model._index_genres()
        return model

    def _require_fit(self) -> None:
        if self.als is None:
            raise RuntimeError("the model is not fitted: call fit() or load() first")

    def describe(self) -> dict[str, Any]:
        return {
            "users": len(self.users),
            "movies": len(self.movies),
            "interactions": self.interactions,
            "params": self.params.as_dict(),
            "online_users": len(self.fresh),
            "density": (
                self.user_items.nnz / max(1, math.prod(self.user_items.shape))
                if self.user_items.shape[0] else 0.0
            ),
        }  # fmt: skip
