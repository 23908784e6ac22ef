"""Recommendations: implicit ALS on watch-history, with a popularity baseline (no Kafka here).

>>> import polars as pl
>>> from movieflix_lab.recs import RecsModel
>>> interactions = pl.DataFrame({
...     "user_id": [f"u{u}" for u in range(20) for _ in range(6)],
...     "movie_id": [f"m{(u + k) % 12}" for u in range(20) for k in range(6)],
...     "ts_ms": list(range(120)), "completion": [0.9] * 120,
...     "rating": [None] * 120, "genre": ["drama"] * 120,
... }, schema_overrides={"rating": pl.Float64})
>>> model = RecsModel().fit(interactions)
>>> len(model.recommend("u0", n=5))
5

(``lab.simulated_history`` makes a seeded history with planted tastes to try it on.)
"""

from movieflix_lab.recs.confidence import Confidence
from movieflix_lab.recs.data import aggregate, interactions_from_records
from movieflix_lab.recs.evaluate import evaluate_recs, ranking_metrics, temporal_split
from movieflix_lab.recs.model import ALSParams, IdMap, Recommendation, RecsModel
from movieflix_lab.recs.store import latest_version, load_version, save_version

__all__ = [
    "ALSParams",
    "Confidence",
    "IdMap",
    "Recommendation",
    "RecsModel",
    "aggregate",
    "evaluate_recs",
    "interactions_from_records",
    "latest_version",
    "load_version",
    "ranking_metrics",
    "save_version",
    "temporal_split",
]
