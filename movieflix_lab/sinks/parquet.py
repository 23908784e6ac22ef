"""Window results as Parquet under ``data/processed/<dataset>/date=YYYY-MM-DD/``.

Quix calls :meth:`ParquetSink.write` at each checkpoint with the batch of one topic
partition; the batch becomes one part file, written to a hidden temporary name and renamed
into place, so a notebook reading while the app runs never sees a half-written file. The
part's name comes from its first offset, so a replayed batch overwrites its own file.

At-least-once delivery (and a replay after a crash) can repeat a window's result in another
part: :func:`read_results` keeps one row per window key, the last written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl
from quixstreams.sinks import BatchingSink, SinkBatch

__all__ = ["ParquetSink", "read_results"]


class ParquetSink(BatchingSink):
    def __init__(self, folder: Path, *, date_field: str = "window_start") -> None:
        super().__init__()
        self.folder = folder
        self.date_field = date_field
        self.rows_written = 0

    def write(self, batch: SinkBatch) -> None:
        rows = [item.value for item in batch]
        if not rows:
            return
        frame = pl.DataFrame(rows, infer_schema_length=None).with_columns(
            pl.col(self.date_field).str.slice(0, 10).alias("_date")
        )
        name = f"part-{batch.topic}-{batch.partition}-{batch.start_offset:012d}.parquet"
        for (date,), part in frame.partition_by("_date", as_dict=True).items():
            folder = self.folder / f"date={date}"
            folder.mkdir(parents=True, exist_ok=True)
            temporary = folder / f".{name}.tmp"
            part.drop("_date").write_parquet(temporary)
            os.replace(temporary, folder / name)
        self.rows_written += len(rows)


def read_results(folder: Path, keys: Sequence[str]) -> pl.DataFrame:
    """Every result under ``folder``, one row per ``keys`` (the last written wins)."""
    files = sorted(folder.glob("date=*/part-*.parquet"), key=lambda p: p.stat().st_mtime_ns)
    if not files:
        return pl.DataFrame()
    frames = [pl.read_parquet(path) for path in files]
    return pl.concat(frames, how="diagonal_relaxed").unique(
        subset=list(keys), keep="last", maintain_order=True
    )
