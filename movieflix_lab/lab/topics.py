"""A topic, or a time or offset range of it, as a DataFrame (bounded, with progress)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

import polars as pl

from movieflix_lab.config import Settings, get_settings
from movieflix_lab.kafka import reader
from movieflix_lab.lab.frames import empty_frame, has_schema, validate_frame
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
    progress: bool | None = None,
    validate: bool = True,
) -> Any:
    """Records of ``topic`` as a DataFrame: JSON fields as columns, plus ``_partition``,
    ``_offset`` and ``_timestamp`` (ms); times in the records as they are written (ISO
    strings such as ``timestamp``, epoch ms such as ``window_start_ms``).

    ``start``/``end`` (datetime, ISO string or epoch ms) select by record timestamp — for
    the event topics that is the event time; ``offsets`` (partition → [first, end)) select
    exactly. Without either, everything up to the end offsets as of the call. At most
    ``max_records`` are read. The offsets read are recorded for the report's manifest, and a
    report re-run pins them. ``progress`` (a bar while reading) defaults to the
    ``lab_progress`` setting: on in JupyterLab, off in a report run.

    A topic the kit knows is checked against its schema (:mod:`movieflix_lab.lab.frames`):
    a column of the wrong dtype, missing, or null where the contract forbids it raises
    :class:`~movieflix_lab.lab.frames.FrameSchemaError` naming it (``validate=False`` skips
    the check); an empty one has the schema's columns. Other topics are returned as read,
    unchecked.
    """
    settings = settings or get_settings()
    progress = settings.lab_progress if progress is None else progress
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
    known = has_schema(topic)
    df = _frame(rows) if rows else empty_frame(topic) if known else pl.DataFrame()
    if validate and known:
        df = validate_frame(df, topic)
    return df.to_pandas() if frame == "pandas" else df


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    try:
        return pl.from_dicts(rows, infer_schema_length=None)
    except (TypeError, pl.exceptions.PolarsError):
        # A list mixing types (recs.user-updates' history rows) has no polars dtype: such
        # lists are read as lists of strings.
        return pl.from_dicts(rows, infer_schema_length=None, strict=False)


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
