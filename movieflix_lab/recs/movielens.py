"""The public MovieLens layouts as MovieFlix interactions and watch-history records.

=========== ======================================= ======================================
layout      ratings                                 movies (genres)
=========== ======================================= ======================================
ml-100k     ``u.data`` (tab: user item rating ts)   ``u.item`` (``|``, 19 genre flags)
ml-1m       ``ratings.dat`` (``::``)                ``movies.dat`` (``::``, ``A|B`` genres)
ml-latest   ``ratings.csv`` (header, half stars)    ``movies.csv`` (header, ``A|B`` genres)
=========== ======================================= ======================================

(ml-10m, ml-20m, ml-25m and ml-32m use the ml-1m or ml-latest layout.) MovieLens has ratings,
not viewings: a rating of ``r`` stars becomes a finished viewing with completion
``(r - 1.5) / 3.5`` clipped to [0, 1] — 5 stars a full watch, 4 stars 71 %, 3 stars 43 %,
2 stars or less abandoned early (a dislike under :class:`~movieflix_lab.recs.Confidence`) —
so the real data runs through exactly the pipeline the platform's viewings do, from a
DataFrame or replayed into ``watch-history``. Users are ``ml-u<id>``, movies ``ml-m<id>``,
and a movie's genre is its first listed one, lower-cased. Durations are unknown: records
carry a nominal 100 minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from movieflix_lab.events.models import WatchRecord
from movieflix_lab.recs.data import INTERACTIONS, MOVIES

__all__ = ["LAYOUTS", "MovieLens", "detect_layout", "read_movielens", "watch_records"]

#: layout → (ratings file, movies file)
LAYOUTS = {
    "ml-100k": ("u.data", "u.item"),
    "ml-1m": ("ratings.dat", "movies.dat"),
    "ml-latest": ("ratings.csv", "movies.csv"),
}
ML100K_GENRES = (
    "unknown", "action", "adventure", "animation", "children", "comedy", "crime",
    "documentary", "drama", "fantasy", "film-noir", "horror", "musical", "mystery",
    "romance", "sci-fi", "thriller", "war", "western",
)  # fmt: skip
NOMINAL_DURATION_S = 6000.0
_NAMESPACE = uuid.UUID("5c1d6a4e-2f0b-4a8e-9d55-6f6d6f766965")


class MovieLens:
    """One MovieLens folder: ``layout``, ``interactions`` and ``movies`` frames."""

    def __init__(self, layout: str, interactions: pl.DataFrame, movies: pl.DataFrame) -> None:
        self.layout = layout
        self.interactions = interactions
        self.movies = movies


def detect_layout(path: Path) -> str:
    for layout, (ratings, movies) in LAYOUTS.items():
        if (path / ratings).is_file() and (path / movies).is_file():
            return layout
    expected = "; ".join(f"{r} + {m} ({name})" for name, (r, m) in LAYOUTS.items())
    raise FileNotFoundError(f"{path} is not a MovieLens folder: expected {expected}")


def _genre(raw: str | None) -> str:
    first = (raw or "").split("|")[0].strip().lower().replace("'s", "")
    return first if first and not first.startswith("(") else "unknown"


def _completion(rating: pl.Expr) -> pl.Expr:
    return ((rating - 1.5) / 3.5).clip(0.0, 1.0)


def _ratings(frame: pl.DataFrame) -> pl.DataFrame:
    """user, movie, rating, ts (seconds) → an interactions frame."""
    return frame.select(
        ("ml-u" + pl.col("user").cast(pl.String)).alias("user_id"),
        ("ml-m" + pl.col("movie").cast(pl.String)).alias("movie_id"),
        (pl.col("ts").cast(pl.Int64) * 1000).alias("ts_ms"),
        _completion(pl.col("rating").cast(pl.Float64)).alias("completion"),
        pl.lit(None, pl.Float64).alias("rating"),
        pl.lit(None, pl.String).alias("genre"),
    )


def _split_lines(path: Path, sep: str, names: list[str]) -> pl.DataFrame:
    rows = []
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.strip():
            parts = line.split(sep)
            rows.append(parts[: len(names)] if len(parts) >= len(names) else parts)
    bad = [i for i, r in enumerate(rows) if len(r) != len(names)]
    if bad:
        raise ValueError(f"{path}: line {bad[0] + 1} has {len(rows[bad[0]])} fields, "
                         f"expected {len(names)} ({', '.join(names)})")  # fmt: skip
    return pl.DataFrame(rows, schema=names, orient="row")


def read_movielens(path: Path) -> MovieLens:
    """Read a MovieLens folder in any of :data:`LAYOUTS`."""
    layout = detect_layout(path)
    ratings_file, movies_file = (path / name for name in LAYOUTS[layout])
    if layout == "ml-100k":
        raw = _split_lines(ratings_file, "\t", ["user", "movie", "rating", "ts"])
        items = []
        for line in movies_file.read_text(encoding="latin-1").splitlines():
            parts = line.split("|")
            if len(parts) < 5 + len(ML100K_GENRES):
                continue
            flags = parts[5 : 5 + len(ML100K_GENRES)]
            genre = next((g for g, f in zip(ML100K_GENRES, flags, strict=True) if f == "1"), None)
            items.append((parts[0], parts[1], genre or "unknown"))
        movies = pl.DataFrame(items, schema=["movie", "title", "genre"], orient="row")
    elif layout == "ml-1m":
        raw = _split_lines(ratings_file, "::", ["user", "movie", "rating", "ts"])
        m = _split_lines(movies_file, "::", ["movie", "title", "genres"])
        movies = m.select("movie", "title", pl.col("genres").map_elements(_genre, pl.String)
                          .alias("genre"))  # fmt: skip
    else:
        raw = pl.read_csv(
            ratings_file, schema_overrides={"userId": pl.String, "movieId": pl.String}
        )
        raw = raw.rename({"userId": "user", "movieId": "movie", "timestamp": "ts"})
        m = pl.read_csv(movies_file, schema_overrides={"movieId": pl.String})
        movies = m.select(
            pl.col("movieId").alias("movie"), "title",
            pl.col("genres").map_elements(_genre, pl.String).alias("genre"),
        )  # fmt: skip
    interactions = _ratings(raw).cast(INTERACTIONS)  # type: ignore[arg-type]
    movies = movies.select(
        ("ml-m" + pl.col("movie").cast(pl.String)).alias("movie_id"), "title", "genre"
    ).cast(MOVIES)  # type: ignore[arg-type]
    genres = movies.select("movie_id", pl.col("genre").alias("movie_genre"))
    interactions = (
        interactions.join(genres, on="movie_id", how="left")
        .with_columns(pl.col("movie_genre").fill_null("unknown").alias("genre"))
        .drop("movie_genre")
        .sort("ts_ms", "user_id", "movie_id")
    )
    return MovieLens(layout, interactions, movies)


def watch_records(interactions: pl.DataFrame) -> Iterator[WatchRecord]:
    """The interactions as watch-history records, in time order (deterministic ids)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for user, movie, ts_ms, completion, genre in (
        interactions.sort("ts_ms")
        .select("user_id", "movie_id", "ts_ms", "completion", "genre")
        .iter_rows()
    ):
        ended = epoch + timedelta(milliseconds=ts_ms)
        watched = round(completion * NOMINAL_DURATION_S, 1)
        yield WatchRecord(
            event_id=uuid.uuid5(_NAMESPACE, f"{user}:{movie}:{ts_ms}"),
            user_id=user,
            timestamp=ended,
            movie_id=movie,
            genre=(genre or "unknown")[:40],
            session_id=f"ml-{ts_ms}",
            device_id="movielens",
            started_at=ended - timedelta(seconds=watched),
            seconds_watched=watched,
            movie_duration_s=NOMINAL_DURATION_S,
            completion_ratio=round(completion, 4),
        )
