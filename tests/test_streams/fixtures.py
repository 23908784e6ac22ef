"""Fixtures of the stream-app tests: a broker of their own (clean topics), batch references."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import polars as pl
import pytest

from movieflix_lab.config import Settings
from movieflix_lab.events import EventBase
from tests.fixtures import running_broker


@pytest.fixture(scope="module")
def clean_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A broker whose topics hold only what the module's tests put there."""
    with running_broker(tmp_path_factory.mktemp("streams") / "broker") as settings:
        yield settings


def _ms(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)


def watch_frame(events: list[EventBase]) -> pl.DataFrame:
    rows = [(e.genre, e.timestamp_ms, e.seconds_watched) for e in events if e.event_type == "watch"]
    return pl.DataFrame(rows, schema=["genre", "ts", "seconds"], orient="row")


def batch_windows(frame: pl.DataFrame, by: list[str], window: timedelta, hop: timedelta | None,
                  value: str | None = None) -> pl.DataFrame:  # fmt: skip
    """Count (and sum ``value``) per ``by`` and window, computed in one batch with polars.

    Each record belongs to every window [start, start + window) that contains its timestamp;
    starts are multiples of ``hop`` (of ``window`` for tumbling windows).
    """
    size, step = _ms(window), _ms(hop or window)
    per_record = size // step
    expanded = (
        frame.with_columns(
            first=(pl.col("ts") // step) * step,
            k=pl.lit(list(range(per_record))),
        )
        .explode("k")
        .with_columns(window_start_ms=pl.col("first") - pl.col("k") * step)
    )
    expanded = expanded.filter(
        (pl.col("window_start_ms") <= pl.col("ts"))
        & (pl.col("ts") < pl.col("window_start_ms") + size)
        & (pl.col("window_start_ms") >= 0)
    )
    aggregations = [pl.len().alias("count")]
    if value:
        aggregations.append(pl.col(value).sum().alias("sum"))
    return expanded.group_by([*by, "window_start_ms"]).agg(aggregations)
