"""Notebook helpers: topics, Parquet sinks, models and simulations as DataFrames; charts.

>>> from movieflix_lab import lab
>>> lab.offline()                                   # charts as inline SVG
>>> events = lab.read_topic("watch-history", start="2026-11-23T18:00:00Z")   # doctest: +SKIP

``read_topic`` and ``load_results`` check their frames against the topic's or dataset's
schema (:mod:`movieflix_lab.lab.frames`) and raise :class:`FrameSchemaError` naming the
column when a topic holds something else.
"""

from movieflix_lab.lab.charts import (
    alert_timeline,
    genre_bars,
    lag_over_time,
    metric_comparison,
    offline,
    pr_curves,
    titled,
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
from movieflix_lab.lab.frames import FrameSchemaError, validate_frame
from movieflix_lab.lab.session import key_numbers, recorded
from movieflix_lab.lab.tables import table
from movieflix_lab.lab.topics import read_topic

__all__ = [
    "FrameSchemaError",
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
    "table",
    "titled",
    "validate_frame",
    "window_series",
]
