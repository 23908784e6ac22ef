"""A topic, or a time or offset range of it, as a DataFrame (bounded, with progress)."""

from __future__ import annotations

import time
import warnings
from datetime import datetime
from typing import Any, Literal

import polars as pl

from movieflix_lab.config import Settings, get_settings
from movieflix_lab.kafka import reader
from movieflix_lab.lab.session import pinned, record

__all__ = ["read_topic"]


def _ms(value: datetime | str | int | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(value.timestamp() * 1000)


def read_topic(
    topic: str,
    *,
    start: datetime | str | int | None = None,
    end: datetime | str | int | None = None,
    offsets: dict[int, tuple[int, int]] | None = None,
    max_records: int = 1_000_000,
    frame: Literal["polars", "pandas"] = "polars",
    settings: Settings | None = None,
    progress: bool = True,
) -> Any:
    """Records of ``topic`` as a DataFrame: JSON fields as columns, plus ``_partition``,
    ``_offset`` and ``_timestamp`` (ms).

    ``start``/``end`` (datetime, ISO string or epoch ms) select by record timestamp — for
    the event topics that is the event time; ``offsets`` (partition → [first, end)) select
    exactly. Without either, everything up to the end offsets as of the call. At most
    ``max_records`` are read. The offsets read are recorded for the report's manifest, and a
    report re-run pins them.
    """
    settings = settings or get_settings()
    chosen = offsets or pinned(topic)
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with _Bar(topic, enabled=progress) as bar:
        snapshot = reader.read_topic(
            settings, topic, rows.extend,
            ranges={p: list(r) for p, r in chosen.items()} if chosen else None,
            start_ms=_ms(start), end_ms=_ms(end), max_records=max_records, metadata=True,
            progress=bar.update,
        )  # fmt: skip
    record(
        "topic",
        topic=topic,
        partitions={str(p): r for p, r in sorted(snapshot.offsets.items())},
        records=snapshot.records,
        unreadable=snapshot.unreadable,
        outside_time_range=snapshot.outside,
        truncated=snapshot.truncated,
        start=None if start is None else str(start),
        end=None if end is None else str(end),
        seconds=round(time.monotonic() - started, 3),
    )
    df = pl.from_dicts(rows, infer_schema_length=None) if rows else pl.DataFrame()
    return df.to_pandas() if frame == "pandas" else df


class _Bar:
    """A rich progress bar that leaves nothing behind in the notebook when done."""

    def __init__(self, topic: str, *, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress

        self._progress = (
            Progress(f"reading {topic}", BarColumn(), MofNCompleteColumn(), transient=True)
            if enabled else None
        )  # fmt: skip
        self._task: Any = None

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            # In a kernel without ipywidgets (a papermill report) rich warns and draws
            # nothing; the warning would be printed in the published report.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message='install "ipywidgets"')
                self._progress.start()
        return self

    def update(self, done: int, total: int) -> None:
        if self._progress is None:
            return
        if self._task is None:
            self._task = self._progress.add_task("read", total=total)
        self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()
