"""Recommendations: implicit ALS on watch-history, with a popularity baseline (no Kafka here).

>>> from movieflix_lab.recs import RecsModel, simulated_history
>>> interactions, movies = simulated_history(seed=1, users=50, days=2)
>>> model = RecsModel().fit(interactions, movies)
>>> len(model.recommend(interactions["user_id"][0], n=5))
5
"""

from movieflix_lab.recs.confidence import Confidence
from movieflix_lab.recs.data import aggregate, interactions_from_records, simulated_history
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
    "simulated_history",
    "temporal_split",
]
