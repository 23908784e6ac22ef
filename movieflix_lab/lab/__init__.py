"""Notebook helpers: topics, Parquet sinks, models and simulations as DataFrames; charts.

>>> from movieflix_lab import lab
>>> lab.offline()                                   # charts as inline SVG
>>> events = lab.read_topic("watch-history", start="2026-11-23T18:00:00Z")   # doctest: +SKIP
"""

from movieflix_lab.lab.charts import (
    alert_timeline,
    genre_bars,
    lag_over_time,
    metric_comparison,
    offline,
    pr_curves,
    window_series,
)
from movieflix_lab.lab.data import (
    fraud_ranking,
    fraud_replay,
    load_fraud_model,
    load_recs,
    load_results,
    simulate_events,
    simulated_history,
)
from movieflix_lab.lab.session import key_numbers, recorded
from movieflix_lab.lab.topics import read_topic

__all__ = [
    "alert_timeline",
    "fraud_ranking",
    "fraud_replay",
    "genre_bars",
    "key_numbers",
    "lag_over_time",
    "load_fraud_model",
    "load_recs",
    "load_results",
    "metric_comparison",
    "offline",
    "pr_curves",
    "read_topic",
    "recorded",
    "simulate_events",
    "simulated_history",
    "window_series",
]
