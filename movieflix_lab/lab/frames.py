"""Frames checked against what their topic or results dataset declares (pandera, polars).

Every topic the kit knows and every window-results dataset declares its columns: a polars
dtype, whether nulls are allowed, and whether every record has it (an optional column is
checked where present; other columns are allowed). The event topics' columns are read off
the event contracts (:mod:`movieflix_lab.events.models`): a field every model of the topic
has is required, one that only some have, or that may be left out, is optional. The rest
are declared here after the records their apps write. Times are as on the wire: ISO 8601
strings (``timestamp``, ``window_start``...) and epoch milliseconds (``*_ms``, and a topic's
``_timestamp``).

:func:`validate_frame` first casts what is sure to lose nothing (a column of nulls;
integers where floats are declared; the same inside lists and structs), then checks every
column at once and raises :class:`FrameSchemaError`, one line naming each column and what
is wrong:

>>> import polars as pl
>>> frame = pl.DataFrame({"user_id": ["u1"], "window_start": ["2026-03-02T18:00:00Z"],
...                       "window_start_ms": [0], "count": ["three"]})
>>> try:
...     validate_frame(frame, "search_volume/per_user")
... except FrameSchemaError as error:
...     for problem in error.problems:
...         print(problem)
missing column 'window_ms'
column 'count' is String, expected Int64 (e.g. 'three')

The message is ``<name>: <problem>; <problem> — pass validate=False to read it unchecked``;
on a topic the example says where the record is (``at partition 0, offset 17``). An empty
frame of a topic or dataset has its declared columns:

>>> empty_frame("search_volume/per_user").columns
['user_id', 'window_start', 'window_start_ms', 'window_ms', 'count']
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin
from uuid import UUID

import polars as pl

from movieflix_lab.exceptions import MovieflixError

if TYPE_CHECKING:  # pandera takes most of a second to import: only when a frame is checked
    from pandera.errors import SchemaErrors
    from pandera.polars import DataFrameSchema

__all__ = [
    "METADATA",
    "Column",
    "FrameSchemaError",
    "columns",
    "empty_frame",
    "has_schema",
    "schema",
    "validate_frame",
]


@dataclass(frozen=True)
class Column:
    """One declared column. ``dtype`` None: any dtype (an object whose keys vary)."""

    dtype: pl.DataType | None
    nullable: bool = False
    required: bool = True
    #: The only values allowed (none: any).
    isin: tuple[str, ...] = ()


class FrameSchemaError(MovieflixError):
    """A frame that is not what its topic or dataset declares; ``problems`` lists each
    column's, ``failure_cases`` is pandera's table of them."""

    def __init__(self, name: str, problems: list[str], failure_cases: Any = None) -> None:
        self.name, self.problems, self.failure_cases = name, problems, failure_cases
        hint = "pass validate=False to read it unchecked"
        super().__init__(f"{name}: {'; '.join(problems)} — {hint}")


_DType = pl.DataType | pl.datatypes.DataTypeClass
_STRING, _INT, _FLOAT = pl.String(), pl.Int64(), pl.Float64()
_ORIGIN = pl.Struct({"topic": pl.String, "partition": pl.Int64, "offset": pl.Int64})

#: The columns ``read_topic`` adds to every record.
METADATA = {"_partition": Column(_INT), "_offset": Column(_INT), "_timestamp": Column(_INT)}


def _declare(**columns: Column | pl.DataType | None) -> dict[str, Column]:
    return {n: c if isinstance(c, Column) else Column(c) for n, c in columns.items()}


def _optional(dtype: pl.DataType | None) -> Column:
    return Column(dtype, nullable=True, required=False)


_ANY = Column(None, nullable=True)

#: The genre app's windows, tumbling and hopping (streams/genre_watch_time.py).
GENRE_WINDOWS = _declare(
    genre=_STRING, window_start=_STRING, window_end=_STRING, window_start_ms=_INT,
    window_ms=_INT, hop_ms=_INT, count=_INT, sum_seconds=_FLOAT,
    mean_seconds=Column(_FLOAT, nullable=True),
)  # fmt: skip
#: The search app's windows (streams/search_volume.py).
SEARCHES_PER_USER = _declare(
    user_id=_STRING, window_start=_STRING, window_start_ms=_INT, window_ms=_INT, count=_INT
)
SEARCHES_IN_TOTAL = _declare(
    window_start=_STRING, window_start_ms=_INT, window_ms=_INT, count=_INT,
    distinct_queries=_INT, top_queries=pl.List(pl.Struct({"query": pl.String, "count": pl.Int64})),
)  # fmt: skip
#: ``fraud.alerts.Alert.as_record()``, plus the fraud app's ``source``.
ALERTS = _declare(
    detector=_STRING, entity_kind=Column(_STRING, isin=("ip", "user")), entity_id=_STRING,
    score=_FLOAT, severity=Column(_STRING, isin=("critical", "high", "low", "medium")),
    window_start_ms=_INT, window_end_ms=_INT, evidence=_ANY, decisive_event_id=_STRING,
    event_time_ms=_INT, detected_at_ms=_INT, user_ids=pl.List(pl.String),
    trigger_event_id=_STRING, alert_id=_STRING, revision=_INT, window_start=_STRING,
    window_end=_STRING, event_time=_STRING, detected_at=_STRING, source=_optional(_STRING),
)  # fmt: skip
#: ``streams.app.LateEvents`` (``value`` is the late record itself).
LATE_EVENTS = _declare(
    window=_STRING, key=Column(_STRING, nullable=True), timestamp_ms=_INT, late_by_ms=_INT,
    window_start_ms=_INT, window_end_ms=_INT, origin=_ORIGIN, value=_ANY,
)  # fmt: skip
#: ``streams.app.DeadLetters`` (``value`` is ``{"text": ...}`` or ``{"base64": ...}``).
DEAD_LETTERS = _declare(
    app=_STRING, error=_STRING, error_type=_STRING, origin=_ORIGIN,
    timestamp_ms=Column(_INT, nullable=True), key=Column(_STRING, nullable=True), value=_ANY,
    dead_at_ms=_INT,
)  # fmt: skip
#: ``streams.recs.RecsApp.updates`` (``history``: movie id → [views, completion, genre]).
RECS_UPDATES = _declare(
    user_id=_STRING, model_version=Column(_STRING, nullable=True),
    factors=Column(pl.List(pl.Float64), nullable=True), history=_ANY, movie_id=_STRING,
    event_time_ms=_INT, updated_at_ms=_INT,
)  # fmt: skip

#: Each Parquet results dataset (``lab.load_results(dataset, output)``) by ``dataset/output``.
RESULTS = {
    "genre_watch_time/tumbling": GENRE_WINDOWS,
    "genre_watch_time/hopping": GENRE_WINDOWS,
    "search_volume/per_user": SEARCHES_PER_USER,
    "search_volume/total": SEARCHES_IN_TOTAL,
}
#: The derived topics; ``<span>`` is a window size (``30m``, ``2h``: a size of its own makes
#: a topic of its own).
TOPICS = {
    "fraud-signals": ALERTS,
    "dead-letters": DEAD_LETTERS,
    "analytics.late-events": LATE_EVENTS,
    "recs.user-updates": RECS_UPDATES,
    "analytics.genre-watch-time.<span>": GENRE_WINDOWS,
    "analytics.genre-watch-time.<span>-hop<span>": GENRE_WINDOWS,
    "analytics.search-volume.user.<span>": SEARCHES_PER_USER,
    "analytics.search-volume.total.<span>": SEARCHES_IN_TOTAL,
}


def _named(pattern: str, name: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace("<span>", r"\d+[smh]"), name) is not None


#: The dtype an event field's JSON value reads as (ids, times and addresses are strings).
_SCALARS: dict[Any, pl.DataType] = {str: _STRING, bool: pl.Boolean(), int: _INT, float: _FLOAT,
                                    UUID: _STRING, datetime: _STRING}  # fmt: skip


def _dtype(annotation: Any, where: str) -> tuple[pl.DataType, bool]:
    """A contract field's polars dtype, and whether it may be left out (``X | None``)."""
    from pydantic import AwareDatetime, IPvAnyAddress

    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType) and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return _dtype(inner, where)[0], True
    if origin is Literal and len({type(a) for a in args}) == 1:
        return _dtype(type(args[0]), where)
    if annotation in (AwareDatetime, IPvAnyAddress):
        return _STRING, False
    if annotation in _SCALARS:
        return _SCALARS[annotation], False
    raise TypeError(f"{where}: no polars dtype for {annotation!r}: add it to lab/frames.py")


@cache
def _event_topics() -> dict[str, dict[str, Column]]:
    """Each event topic's columns, from the contracts of the event types routed to it."""
    from movieflix_lab.events.models import EVENT_MODELS
    from movieflix_lab.kafka.event_writer import TOPIC_BY_EVENT_TYPE

    topics: dict[str, dict[str, Column]] = {}
    for topic in dict.fromkeys(spec.name for spec in TOPIC_BY_EVENT_TYPE.values()):
        kinds = sorted(k for k, spec in TOPIC_BY_EVENT_TYPE.items() if spec.name == topic)
        models = [EVENT_MODELS[kind] for kind in kinds]
        fields: dict[str, tuple[pl.DataType, bool]] = {}  # name → dtype, may be left out
        for model in models:
            for name, field in model.model_fields.items():
                dtype, optional = _dtype(field.annotation, f"{model.__name__}.{name}")
                seen, left_out = fields.setdefault(name, (dtype, optional))
                if seen != dtype:
                    raise TypeError(f"{topic}: field {name} is {seen} and {dtype}")
                fields[name] = (dtype, optional or left_out)
        declared = {}
        for name, (dtype, optional) in fields.items():
            every = not optional and all(name in m.model_fields for m in models)
            allowed = tuple(kinds) if name == "event_type" else ()
            declared[name] = Column(dtype, nullable=not every, required=every, isin=allowed)
        topics[topic] = declared
    return topics


def _lookup(name: str) -> dict[str, Column] | None:
    if name in RESULTS:
        return RESULTS[name]
    shape = _event_topics().get(name)
    if shape is None:
        shape = next((s for pattern, s in TOPICS.items() if _named(pattern, name)), None)
    return None if shape is None else {**shape, **METADATA}


def has_schema(name: str) -> bool:
    """Whether ``name`` (a topic, or a results ``dataset/output``) declares its columns."""
    return _lookup(name) is not None


def columns(name: str) -> dict[str, Column]:
    """The declared columns of a topic (with :data:`METADATA`) or a results dataset."""
    found = _lookup(name)
    if found is None:
        known = ", ".join([*_event_topics(), *TOPICS, *RESULTS])
        raise KeyError(f"no schema for {name!r}; known: {known}")
    return found


@cache
def schema(name: str) -> DataFrameSchema:
    """The pandera schema of a topic or results dataset."""
    import pandera.polars as pa

    return pa.DataFrameSchema(
        {
            column: pa.Column(
                spec.dtype,
                pa.Check.isin(spec.isin) if spec.isin else None,
                nullable=spec.nullable,
                required=spec.required,
            )
            for column, spec in columns(name).items()
        },
        name=name,
        strict=False,
    )


def empty_frame(name: str) -> pl.DataFrame:
    """No rows, with every declared column (optional ones too) in its dtype."""
    return pl.DataFrame(schema={n: c.dtype or pl.Null() for n, c in columns(name).items()})


def _lossless(actual: _DType, declared: _DType) -> bool:
    """Whether ``actual`` casts to ``declared`` losing nothing (what JSON inference leaves)."""
    if actual == declared or actual == pl.Null:
        return True
    if declared == pl.Float64 and actual.is_integer():
        return True
    if isinstance(actual, pl.List) and isinstance(declared, pl.List):
        return _lossless(actual.inner, declared.inner)
    if isinstance(actual, pl.Struct) and isinstance(declared, pl.Struct):
        have, want = actual.to_schema(), declared.to_schema()
        return list(have) == list(want) and all(_lossless(have[n], want[n]) for n in have)
    return False


def _coerce(frame: pl.DataFrame, declared: dict[str, Column]) -> pl.DataFrame:
    casts = {
        name: spec.dtype
        for name, spec in declared.items()
        if spec.dtype is not None and name in frame.columns
        and frame.schema[name] != spec.dtype and _lossless(frame.schema[name], spec.dtype)
    }  # fmt: skip
    return frame.cast(casts) if casts else frame  # type: ignore[arg-type]


def validate_frame(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """``frame`` checked against the columns ``name`` declares (a topic, or a results
    ``dataset/output``), sure casts made; :class:`FrameSchemaError` names every column that
    is wrong, ``KeyError`` when ``name`` declares nothing."""
    from pandera.errors import SchemaErrors

    declared = columns(name)
    frame = _coerce(frame, declared)
    try:
        return schema(name).validate(frame, lazy=True)
    except SchemaErrors as errors:
        problems = _problems(errors, frame, declared)
        raise FrameSchemaError(name, problems, errors.failure_cases) from None


def _where(frame: pl.DataFrame, mask: pl.Expr, column: str, *, value: bool) -> str:
    """Where the first row matching ``mask`` is (its partition and offset, on a topic)."""
    at = ["_partition", "_offset"] if {"_partition", "_offset"} <= set(frame.columns) else []
    rows = frame.filter(mask).select(column, *at).head(1).rows()
    if not rows:
        return ""
    first, *place = rows[0]
    parts = [repr(first)] if value else []
    if place:
        parts.append(f"at partition {place[0]}, offset {place[1]}")
    return f" (e.g. {' '.join(parts)})" if parts else ""


def _problems(errors: SchemaErrors, frame: pl.DataFrame, declared: dict[str, Column]) -> list[str]:
    """One phrase per column that is wrong, from pandera's failure cases."""
    missing: list[str] = []
    problems: list[str] = []
    for error in errors.schema_errors:
        reason = getattr(error.reason_code, "value", None)
        column = error.column_name
        if reason == "column_not_in_dataframe":
            missing.append(repr(str(error.failure_cases)))
            continue
        if column is None or column not in frame.columns:
            problems.append(str(error).splitlines()[0])
            continue
        values = pl.col(column)
        actual, want = frame.schema[column], declared[column].dtype
        if reason == "wrong_dtype" and want is not None:
            example = ""
            if actual == pl.String and (want.is_numeric() or want == pl.Boolean):
                unreadable = values.is_not_null() & values.cast(want, strict=False).is_null()
                example = _where(frame, unreadable, column, value=True)
            problems.append(f"column {column!r} is {actual}, expected {want}{example}")
        elif reason == "series_contains_nulls":
            where = _where(frame, values.is_null(), column, value=False)
            count = frame[column].null_count()
            problems.append(f"column {column!r} is missing or null in {count} of "
                            f"{frame.height} records{where}")  # fmt: skip
        elif reason == "dataframe_check" and declared[column].isin:
            allowed = ", ".join(declared[column].isin)
            bad = values.is_not_null() & ~values.is_in(declared[column].isin)
            where = _where(frame, bad, column, value=True)
            problems.append(f"column {column!r} holds values other than {allowed}{where}")
        else:
            problems.append(f"column {column!r}: {str(error).splitlines()[0]}")
    if missing:
        plural = "s" if len(missing) > 1 else ""
        problems.insert(0, f"missing column{plural} {', '.join(missing)}")
    return problems
