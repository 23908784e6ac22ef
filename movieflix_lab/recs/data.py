"""Interactions as DataFrames: from watch records, ratings, or Parquet.

An *interactions* frame has one row per viewing (or rating) — ``user_id``, ``movie_id``,
``ts_ms`` (event time, epoch ms), ``completion`` (share watched; null for a rating alone),
``rating`` (1-5 stars or null), ``genre`` (or null) — and :func:`aggregate` turns it into one
row per user and movie with the :class:`~movieflix_lab.recs.confidence.Confidence` strength
and matrix value. A *movies* frame has ``movie_id``, ``title``, ``genre``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from movieflix_lab.recs.confidence import Confidence

__all__ = [
    "INTERACTIONS",
    "MOVIES",
    "aggregate",
    "interactions_from_records",
    "movies_from_interactions",
    "read_parquet_events",
]

INTERACTIONS: dict[str, Any] = {
    "user_id": pl.String, "movie_id": pl.String, "ts_ms": pl.Int64,
    "completion": pl.Float64, "rating": pl.Float64, "genre": pl.String,
}  # fmt: skip
MOVIES: dict[str, Any] = {"movie_id": pl.String, "title": pl.String, "genre": pl.String}


def _ms(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    if hasattr(value, "timestamp"):
        return int(value.timestamp() * 1000)
    from datetime import datetime

    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)


def interactions_from_records(records: Iterable[Mapping[str, Any] | Any]) -> pl.DataFrame:
    """Watch records and rate events (dicts or event models) → an interactions frame."""
    rows: list[tuple[Any, ...]] = []
    for record in records:
        if not isinstance(record, Mapping):
            record = record.model_dump(mode="python")  # an event model
        kind = record.get("event_type")
        if kind == "watch":
            rows.append((record["user_id"], record["movie_id"], _ms(record["timestamp"]),
                         float(record["completion_ratio"]), None, record.get("genre")))  # fmt: skip
        elif kind == "rate":
            rows.append((record["user_id"], record["movie_id"], _ms(record["timestamp"]),
                         None, float(record["rating"]), None))  # fmt: skip
    return pl.DataFrame(rows, schema=INTERACTIONS, orient="row")


def aggregate(interactions: pl.DataFrame, confidence: Confidence | None = None) -> pl.DataFrame:
    """One row per (user, movie): views, best completion, last rating, first/last time,
    strength and matrix value; sorted by user and first time."""
    confidence = confidence or Confidence()
    pairs = (
        interactions.sort("ts_ms")
        .group_by("user_id", "movie_id", maintain_order=True)
        .agg(
            pl.col("completion").count().alias("views"),
            pl.col("completion").max().fill_null(0.0).alias("completion"),
            pl.col("rating").drop_nulls().last().alias("rating"),
            pl.col("ts_ms").min().alias("first_ms"),
            pl.col("ts_ms").max().alias("last_ms"),
            pl.col("genre").drop_nulls().last().alias("genre"),
        )
        .with_columns(pl.col("views").clip(lower_bound=1))
        .sort("user_id", "first_ms", "movie_id")
    )
    strength = confidence.strength(
        pairs["completion"].to_numpy(),
        pairs["views"].to_numpy(),
        pairs["rating"].fill_null(float("nan")).to_numpy(),
    )
    return pairs.with_columns(
        pl.Series("strength", strength), pl.Series("value", confidence.value(strength))
    )


def movies_from_interactions(interactions: pl.DataFrame) -> pl.DataFrame:
    """A movies frame when there is no catalog: title = id, genre = the latest seen."""
    return (
        interactions.group_by("movie_id")
        .agg(pl.col("genre").drop_nulls().last())
        .with_columns(pl.col("movie_id").alias("title"), pl.col("genre").fill_null("unknown"))
        .select(list(MOVIES))
        .sort("movie_id")
    )


def read_parquet_events(path: Path) -> pl.DataFrame:
    """The ``simulate --to parquet`` layout (``event_type=watch/``, ``event_type=rate/``)."""
    frames = []
    watch, rate = path / "event_type=watch", path / "event_type=rate"
    if not watch.is_dir():
        raise FileNotFoundError(f"{path} has no event_type=watch/ folder of watch records")
    w = pl.read_parquet(watch)
    frames.append(
        w.select(
            "user_id",
            "movie_id",
            pl.col("timestamp").dt.epoch("ms").alias("ts_ms"),
            pl.col("completion_ratio").cast(pl.Float64).alias("completion"),
            pl.lit(None, pl.Float64).alias("rating"),
            "genre",
        )
    )
    if rate.is_dir():
        r = pl.read_parquet(rate)
        frames.append(
            r.select(
                "user_id",
                "movie_id",
                pl.col("timestamp").dt.epoch("ms").alias("ts_ms"),
                pl.lit(None, pl.Float64).alias("completion"),
                pl.col("rating").cast(pl.Float64),
                pl.lit(None, pl.String).alias("genre"),
            )
        )
    return pl.concat(frames).cast(INTERACTIONS)  # type: ignore[arg-type]
