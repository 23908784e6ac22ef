"""Stream against batch: what a stream app wrote, window by window, next to a batch recomputation.

The batch side is computed here, independently of the stream apps' code: it reads the
source topic over exactly the offsets the app's consumer group has committed, decodes each
record with the contracts, and computes every window in one polars pass. Event-time rules,
as the apps document them (:mod:`movieflix_lab.streams.watermarks`):

- a record is *late* for a window that ended at or before its source partition's progress
  (the largest event time earlier in that partition) minus the grace period; it counts in
  its other windows;
- a window must be closed once every source partition's progress minus the grace period
  has passed its end (per-user search windows: once their own partition's has).

Per window the result holds the stream's value, the batch value, their difference, and the
late records that explain why the batch value differs from a count of all records. A window
the stream closed must equal the batch value; a window the batch says must be closed and the
stream has not written is *missing*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from movieflix_lab.config import Settings
from movieflix_lab.events.codec import EventDecodeError, decode
from movieflix_lab.kafka.catalog import (
    SEARCH_EVENTS,
    WATCH_HISTORY,
    genre_watch_time_names,
    search_volume_names,
)
from movieflix_lab.kafka.lag import consumer_lag
from movieflix_lab.kafka.reader import read_topic
from movieflix_lab.lab.session import pinned, record
from movieflix_lab.sinks.parquet import read_results

__all__ = [
    "OutputCheck",
    "Reconciliation",
    "WindowSpec",
    "analytics_specs",
    "batch_windows",
    "reconcile",
    "reconcile_analytics",
    "source_frame",
]

NEVER = -(2**62)
Stream = Literal["parquet", "topic"]


@dataclass(frozen=True)
class WindowSpec:
    """One windowed output: where it comes from, its shape, where the app wrote it."""

    name: str
    source_topic: str
    event_type: str
    keys: tuple[str, ...]
    size: timedelta
    step: timedelta
    grace: timedelta
    result_topic: str
    parquet: tuple[str, str]  # (dataset, output) under data/processed
    value: str | None = None  # summed field (``sum_seconds`` in the results)
    #: Closed per source partition (per-user windows), not on the watermark over all.
    per_partition: bool = False
    hop_ms: int | None = None  # the results' hop_ms column, when it has one

    @property
    def size_ms(self) -> int:
        return int(self.size.total_seconds() * 1000)

    @property
    def step_ms(self) -> int:
        return int(self.step.total_seconds() * 1000)

    @property
    def grace_ms(self) -> int:
        return int(self.grace.total_seconds() * 1000)


def analytics_specs(
    window: timedelta = timedelta(minutes=30),
    hop: timedelta = timedelta(minutes=5),
    grace: timedelta = timedelta(minutes=5),
    search_grace: timedelta | None = None,
) -> list[WindowSpec]:
    """The analytics app's four windowed outputs (its defaults unless told otherwise)."""
    sgrace = search_grace if search_grace is not None else grace
    tumbling, hopping = genre_watch_time_names(window, hop)
    per_user, total = search_volume_names(window)
    return [
        WindowSpec("genre watch time, tumbling", WATCH_HISTORY.name, "watch", ("genre",), window,
                   window, grace, tumbling, ("genre_watch_time", "tumbling"), "seconds_watched",
                   hop_ms=0),
        WindowSpec("genre watch time, hopping", WATCH_HISTORY.name, "watch", ("genre",), window,
                   hop, grace, hopping, ("genre_watch_time", "hopping"), "seconds_watched",
                   hop_ms=int(hop.total_seconds() * 1000)),
        WindowSpec("search volume, total", SEARCH_EVENTS.name, "search", (), window, window,
                   sgrace, total, ("search_volume", "total")),
        WindowSpec("search volume, per user", SEARCH_EVENTS.name, "search", ("user_id",),
                   window, window, sgrace, per_user, ("search_volume", "per_user"),
                   per_partition=True),
    ]  # fmt: skip


def source_frame(
    settings: Settings, topic: str, event_type: str, *, group: str | None = None
) -> pl.DataFrame:
    """The records of ``topic`` that decode as ``event_type`` events, with their partition,
    offset and event time; over the offsets ``group`` committed (everything without one).
    Undecodable records (they went to ``dead-letters``) are left out."""
    ranges: dict[int, list[int]] | None = None
    pins = pinned(topic)  # a report's re-run reads exactly what the first run read
    if pins is not None:
        ranges = {p: list(r) for p, r in pins.items()}
    elif group is not None:
        lags = [row for row in consumer_lag(settings, [group]) if row.topic == topic]
        if not lags:
            raise ValueError(f"group {group} has committed nothing on {topic}")
        ranges = {row.partition: [0, row.committed or 0] for row in lags}
    rows: list[dict[str, Any]] = []

    def keep(batch: list[dict[str, Any]]) -> None:
        for raw in batch:
            meta = {k: raw.pop(k) for k in ("_partition", "_offset", "_timestamp")}
            try:
                event = decode(raw)
            except EventDecodeError:
                continue
            if getattr(event, "event_type", None) != event_type:
                continue
            row = event.model_dump(mode="json")
            rows.append({"partition": meta["_partition"], "offset": meta["_offset"],
                         "ts": event.timestamp_ms, **row})  # fmt: skip

    snapshot = read_topic(settings, topic, keep, ranges=ranges, metadata=True)
    record("topic", topic=topic, records=snapshot.records, unreadable=snapshot.unreadable,
           partitions={str(p): r for p, r in sorted(snapshot.offsets.items())})  # fmt: skip
    if not rows:
        return pl.DataFrame(schema={"partition": pl.Int64, "offset": pl.Int64, "ts": pl.Int64})
    return pl.DataFrame(rows, infer_schema_length=None)


def batch_windows(frame: pl.DataFrame, spec: WindowSpec) -> tuple[pl.DataFrame, int]:
    """Every window of ``spec`` over ``frame`` (one polars pass), and how many records were
    late for at least one of their windows.

    Columns: keys, ``window_start_ms``, ``batch_count`` (records not late), ``batch_sum``,
    ``all_count`` (every record), ``late`` (late records), ``must_close`` (every source
    partition's progress, or the window's own partition's, minus the grace is past its end).
    """
    size, step, grace = spec.size_ms, spec.step_ms, spec.grace_ms
    keys = list(spec.keys)
    ordered = frame.sort("partition", "offset").with_columns(
        before=pl.col("ts").cum_max().shift(1).over("partition").fill_null(NEVER)
    )
    final = ordered.group_by("partition").agg(progress=pl.col("ts").max())
    expanded = (
        ordered.with_columns(
            first=(pl.col("ts") // step) * step, k=pl.lit(list(range(size // step)))
        )
        .explode("k")
        .with_columns(window_start_ms=pl.col("first") - pl.col("k") * step)
        .filter(
            (pl.col("window_start_ms") >= 0) & (pl.col("window_start_ms") + size > pl.col("ts"))
        )
        .with_columns(is_late=(pl.col("window_start_ms") + size) <= (pl.col("before") - grace))
    )
    late_records = expanded.filter("is_late").select("partition", "offset").unique().height
    value = pl.col(spec.value) if spec.value else pl.lit(0.0)
    on_time = ~pl.col("is_late")
    windows = expanded.group_by([*keys, "window_start_ms"]).agg(
        batch_count=on_time.sum().cast(pl.Int64),
        batch_sum=value.filter(on_time).sum().cast(pl.Float64),
        all_count=pl.len().cast(pl.Int64),
        late=pl.col("is_late").sum().cast(pl.Int64),
        partition=pl.col("partition").first(),
    )
    if spec.per_partition:
        closes = final.with_columns(until=pl.col("progress") - grace).select("partition", "until")
        windows = windows.join(closes, on="partition", how="left").with_columns(
            must_close=(pl.col("window_start_ms") + size) <= pl.col("until")
        )
        return windows.drop("partition", "until"), late_records
    slowest = final["progress"].cast(pl.Int64).min()
    until = int(slowest) - grace if isinstance(slowest, int) else NEVER
    windows = windows.with_columns(must_close=(pl.col("window_start_ms") + size) <= until)
    return windows.drop("partition"), late_records


@dataclass(frozen=True)
class OutputCheck:
    """One output reconciled: per window, stream and batch side by side."""

    spec: WindowSpec
    #: keys, window_start_ms, stream_count, batch_count, diff_count, stream_sum, batch_sum,
    #: diff_sum, all_count, late, status (``equal``, ``differs``, ``missing``, ``open``, or
    #: ``all late``: every record of it was late, so no stream writes it).
    windows: pl.DataFrame
    records: int
    late_records: int

    def _status(self, status: str) -> int:
        return int((self.windows["status"] == status).sum())

    @property
    def closed(self) -> int:
        return self._status("equal") + self._status("differs")

    @property
    def equal(self) -> int:
        return self._status("equal")

    @property
    def missing(self) -> int:
        return self._status("missing")

    @property
    def ok(self) -> bool:
        return self.equal == self.closed and self.missing == 0

    def line(self) -> str:
        text = (f"{self.spec.name}: {self.closed:,} windows closed, {self.equal:,} equal to the "
                f"batch computation")  # fmt: skip
        if self.missing:
            text += f", {self.missing:,} missing"
        return text + f" ({self.late_records:,} late records of {self.records:,})"


@dataclass(frozen=True)
class Reconciliation:
    checks: list[OutputCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def lines(self) -> list[str]:
        return [check.line() for check in self.checks]


def _stream_results(settings: Settings, spec: WindowSpec, stream: Stream,
                    parquet_dir: Path | None) -> pl.DataFrame:  # fmt: skip
    keys = [*spec.keys, "window_start_ms"]
    if stream == "parquet":
        dataset, output = spec.parquet
        folder = (parquet_dir or settings.processed_dir) / dataset / output
        if not folder.exists():
            return pl.DataFrame()
        frame = read_results(folder, (*keys, "window_ms"))
        record("parquet", path=str(folder), rows=frame.height)
    else:
        rows: list[dict[str, Any]] = []
        read_topic(settings, spec.result_topic, rows.extend)
        frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
        if frame.height:  # at-least-once may write a window twice: the same values
            frame = frame.unique(subset=keys, keep="last")
    if frame.height and "window_ms" in frame.columns:
        frame = frame.filter(pl.col("window_ms") == spec.size_ms)
    if frame.height and spec.hop_ms is not None and "hop_ms" in frame.columns:
        frame = frame.filter(pl.col("hop_ms") == spec.hop_ms)
    return frame


def reconcile(
    settings: Settings,
    spec: WindowSpec,
    *,
    group: str | None = None,
    stream: Stream = "parquet",
    parquet_dir: Path | None = None,
    source: pl.DataFrame | None = None,
) -> OutputCheck:
    """Reconcile one output; ``source`` (from :func:`source_frame`) saves a re-read."""
    if source is None:
        source = source_frame(settings, spec.source_topic, spec.event_type, group=group)
    batch, late_records = batch_windows(source, spec)
    got = _stream_results(settings, spec, stream, parquet_dir)
    keys = [*spec.keys, "window_start_ms"]
    sum_column = "sum_seconds" if spec.value else None
    if got.height:
        got = got.select(
            *keys,
            stream_count=pl.col("count").cast(pl.Int64),
            stream_sum=pl.col(sum_column).cast(pl.Float64) if sum_column else pl.lit(0.0),
        )
    else:
        got = pl.DataFrame(
            schema={
                **{k: batch.schema[k] for k in keys},
                "stream_count": pl.Int64,
                "stream_sum": pl.Float64,
            }
        )
    joined = batch.join(got.cast({k: batch.schema[k] for k in keys}), on=keys, how="full",
                        coalesce=True)  # fmt: skip
    joined = joined.with_columns(
        pl.col("batch_count", "all_count", "late").fill_null(0),
        pl.col("batch_sum").fill_null(0.0),
        pl.col("must_close").fill_null(False),
    ).with_columns(
        diff_count=pl.col("stream_count") - pl.col("batch_count"),
        diff_sum=pl.col("stream_sum") - pl.col("batch_sum"),
    )
    tolerance = 1e-6 * pl.col("batch_sum").abs().clip(lower_bound=1)
    status = (
        pl.when(pl.col("stream_count").is_null() & (pl.col("batch_count") == 0))
        .then(pl.lit("all late"))
        .when(pl.col("stream_count").is_null() & pl.col("must_close"))
        .then(pl.lit("missing"))
        .when(pl.col("stream_count").is_null())
        .then(pl.lit("open"))
        .when((pl.col("diff_count") == 0) & (pl.col("diff_sum").abs() <= tolerance))
        .then(pl.lit("equal"))
        .otherwise(pl.lit("differs"))
    )
    joined = joined.with_columns(status=status).drop("must_close").sort(keys)
    return OutputCheck(spec, joined, records=source.height, late_records=late_records)


def reconcile_analytics(
    settings: Settings,
    *,
    group: str | None = None,
    stream: Stream = "parquet",
    specs: list[WindowSpec] | None = None,
    parquet_dir: Path | None = None,
    sources: dict[tuple[str, str], pl.DataFrame] | None = None,
) -> Reconciliation:
    """Every windowed output of the analytics app, reconciled (one read per source topic).

    ``sources``: source frames by (topic, event type), filled as they are read; pass the
    same dict again to reconcile newer stream results without reading the sources again.
    """
    specs = specs or analytics_specs()
    sources = {} if sources is None else sources
    checks = []
    for spec in specs:
        where = (spec.source_topic, spec.event_type)
        if where not in sources:
            sources[where] = source_frame(settings, *where, group=group)
        checks.append(reconcile(settings, spec, group=group, stream=stream,
                                parquet_dir=parquet_dir, source=sources[where]))  # fmt: skip
    return Reconciliation(checks)
