"""Validated frames: every topic's and results dataset's records fit its declared schema, and
a frame that does not is refused with one line naming the column."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from movieflix_lab import lab
from movieflix_lab.config import Settings
from movieflix_lab.events.codec import decode, encode
from movieflix_lab.events.models import EVENT_MODELS
from movieflix_lab.kafka.catalog import WATCH_HISTORY, create_topics
from movieflix_lab.kafka.client import producer
from movieflix_lab.kafka.event_writer import TOPIC_BY_EVENT_TYPE, EventWriter
from movieflix_lab.kafka.reader import TopicSnapshot
from movieflix_lab.lab import frames, topics
from movieflix_lab.lab.frames import FrameSchemaError, columns, empty_frame, validate_frame
from movieflix_lab.simulate import SimulationConfig, Simulator
from movieflix_lab.streams.app import DeadLetters, LateEvents
from movieflix_lab.streams.genre_watch_time import _result
from movieflix_lab.streams.recs import ModelHolder, RecsApp

EXAMPLES = sorted((Path(frames.__file__).parents[1] / "schemas" / "examples").glob("*.json"))


def _frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    """What ``read_topic`` makes of records: JSON fields and the metadata columns."""
    rows = [{**r, "_partition": 0, "_offset": i, "_timestamp": 1_000 + i}
            for i, r in enumerate(records)]  # fmt: skip
    return pl.from_dicts(rows, infer_schema_length=None)


def _by_topic(events: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Events as their topics hold them: the codec's JSON, read back as ``json.loads`` does."""
    records = defaultdict(list)
    for event in events:
        records[TOPIC_BY_EVENT_TYPE[event.event_type].name].append(json.loads(encode(event)))
    return records


@pytest.fixture(scope="module")
def simulated() -> list[Any]:
    return list(Simulator(SimulationConfig(seed=3, users=200, minutes=60, activity=4)).events())


def test_every_event_topic_of_a_simulation_validates(simulated: list[Any]) -> None:
    assert set(Counter(e.event_type for e in simulated)) == set(EVENT_MODELS)
    records = _by_topic(simulated)
    assert set(records) == {spec.name for spec in TOPIC_BY_EVENT_TYPE.values()}
    for topic, rows in records.items():
        frame = validate_frame(_frame(rows), topic)
        assert frame.height == len(rows)
        assert frame.schema["timestamp"] == pl.String  # ISO strings, as on the wire


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_contract_example_validates_in_its_topic(path: Path) -> None:
    # Every field of every contract (the examples carry the optional ones too): a field
    # added to a contract with a dtype the schema maps wrongly fails here.
    event = decode(path.read_bytes())
    topic = TOPIC_BY_EVENT_TYPE[event.event_type].name  # type: ignore[attr-defined]
    record = json.loads(encode(event))
    frame = validate_frame(_frame([record]), topic)
    declared = columns(topic)
    assert set(record) <= set(declared)
    for name in record:
        assert declared[name].dtype == frame.schema[name], name


def test_fields_only_some_event_types_have_are_optional() -> None:
    interactions = columns("user-interactions")
    assert interactions["movie_id"].required and not interactions["movie_id"].nullable
    assert not interactions["rating"].required and interactions["rating"].dtype == pl.Int64
    assert not interactions["session_id"].required  # a rating has none
    assert interactions["event_type"].isin == ("pause", "play", "rate", "seek", "stop")
    assert not columns("login-events")["failure_reason"].required


def test_alerts_of_the_detectors_validate_and_every_alert_field_is_declared() -> None:
    alerts, _, _ = lab.fraud_replay(seed=7, users=300, minutes=90,
                                    incident_rates={"binge_bot": 20.0,
                                                    "credential_stuffing": 20.0})  # fmt: skip
    assert alerts
    assert {a["entity_kind"] for a in alerts} == {"user", "ip"}
    validate_frame(_frame([{**a, "source": "fraud"} for a in alerts]), "fraud-signals")
    assert set(alerts[0]) | {"source"} == set(columns("fraud-signals")) - set(frames.METADATA)


def test_the_apps_derived_records_validate() -> None:
    genre = _result(1_800_000, 300_000)(
        {"key": "drama", "start": 0, "end": 1_800_000, "count": 2, "sum": 7200}  # an int sum
    )
    frame = validate_frame(_frame([genre]), "analytics.genre-watch-time.30m-hop5m")
    assert frame.schema["sum_seconds"] == pl.Float64  # widened: a sure cast
    per_user = {"user_id": "u1", "window_start": "1970-01-01T00:00:00Z", "window_start_ms": 0,
                "window_ms": 3_600_000, "count": 3}  # fmt: skip
    validate_frame(_frame([per_user]), "analytics.search-volume.user.1h")
    total = {"window_start": "1970-01-01T00:00:00Z", "window_start_ms": 0, "window_ms": 60_000,
             "count": 0, "distinct_queries": 0, "top_queries": []}  # fmt: skip
    assert validate_frame(_frame([total]), "analytics.search-volume.total.1m").schema[
        "top_queries"
    ] == pl.List(pl.Struct({"query": pl.String, "count": pl.Int64}))

    written: list[dict[str, Any]] = []

    class Producer:
        def produce(self, topic: str, value: bytes, **_: Any) -> None:
            written.append(json.loads(value))

        def poll(self, timeout: float) -> None: ...

    letters = DeadLetters(Settings(), "analytics")
    letters.internal = Producer()
    letters.send(ValueError("bad"), topic="watch-history", partition=None, offset=None,
                 key=None, value=b"\xff", timestamp_ms=None)  # fmt: skip
    validate_frame(_frame(written), "dead-letters")

    written.clear()
    late = LateEvents.__new__(LateEvents)
    late.by_window, late._producer = Counter(), Producer()
    late({"event_id": "e1"}, "drama", 5, 60_000, 0, 1_800_000, "tumbling", "watch-history", 2, 9)
    validate_frame(_frame(written), "analytics.late-events")


def _watch(simulated: list[Any]) -> list[dict[str, Any]]:
    return _by_topic(simulated)["watch-history"][:3]


def test_a_wrong_dtype_names_the_column_and_the_record(simulated: list[Any]) -> None:
    rows = _watch(simulated)
    rows[1] = {**rows[1], "seconds_watched": "a lot"}
    with pytest.raises(FrameSchemaError) as caught:
        validate_frame(_frame(rows), "watch-history")
    assert str(caught.value) == (
        "watch-history: column 'seconds_watched' is String, expected Float64 (e.g. 'a lot' at "
        "partition 0, offset 1) — pass validate=False to read it unchecked"
    )
    assert caught.value.problems == [
        "column 'seconds_watched' is String, expected Float64 (e.g. 'a lot' at partition 0, "
        "offset 1)"
    ]


def test_a_missing_column_and_nulls_are_named(simulated: list[Any]) -> None:
    rows = _watch(simulated)
    rows[2] = {k: v for k, v in rows[2].items() if k != "device_id"}
    frame = _frame(rows).drop("genre")
    with pytest.raises(FrameSchemaError) as caught:
        validate_frame(frame, "watch-history")
    assert caught.value.problems == [
        "missing column 'genre'",
        "column 'device_id' is missing or null in 1 of 3 records (e.g. at partition 0, offset 2)",
    ]
    assert "\n" not in str(caught.value)


def test_another_topics_records_are_refused(simulated: list[Any]) -> None:
    logins = _by_topic(simulated)["login-events"][:2]
    with pytest.raises(FrameSchemaError) as caught:
        validate_frame(_frame(logins), "watch-history")
    message = str(caught.value)
    assert message.startswith("watch-history: missing columns 'movie_id', 'genre', ")
    assert "column 'event_type' holds values other than watch (e.g. 'login' at partition 0, " \
           "offset 0)" in message  # fmt: skip


def test_sure_casts_are_made_and_unsure_ones_refused() -> None:
    base = {"genre": "drama", "window_start": "x", "window_end": "y", "window_start_ms": 0,
            "window_ms": 1, "hop_ms": 0, "count": 1, "sum_seconds": 5,
            "mean_seconds": None}  # fmt: skip
    frame = validate_frame(pl.from_dicts([base]), "genre_watch_time/tumbling")
    assert frame.schema["sum_seconds"] == frame.schema["mean_seconds"] == pl.Float64
    with pytest.raises(FrameSchemaError, match=r"column 'count' is Float64, expected Int64"):
        validate_frame(pl.from_dicts([{**base, "count": 1.5}]), "genre_watch_time/tumbling")


def test_an_empty_frame_has_the_declared_columns() -> None:
    empty = empty_frame("user-interactions")
    assert empty.height == 0
    assert {"event_type", "rating", "_partition", "_offset", "_timestamp"} <= set(empty.columns)
    assert empty.schema["rating"] == pl.Int64 and empty.schema["timestamp"] == pl.String
    assert validate_frame(empty, "user-interactions").filter(pl.col("rating") > 3).height == 0
    with pytest.raises(KeyError, match="no schema for 'test-topic'"):
        empty_frame("test-topic")


def _fake_reader(monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]]) -> None:
    def read(settings: Settings, topic: str, on_batch: Any, **_: Any) -> TopicSnapshot:
        if rows:
            on_batch([dict(r) for r in rows])
        return TopicSnapshot(topic, {0: [0, len(rows)]}, records=len(rows))

    monkeypatch.setattr(topics.reader, "read_topic", read)


def test_read_topic_validates_and_gives_an_empty_topic_its_columns(
    monkeypatch: pytest.MonkeyPatch, simulated: list[Any]
) -> None:
    _fake_reader(monkeypatch, [])
    dead = lab.read_topic("dead-letters", settings=Settings(), progress=False)
    assert dead.height == 0 and "origin" in dead.columns
    assert lab.read_topic("test-topic", settings=Settings(), progress=False).width == 0
    watch = lab.read_topic("watch-history", settings=Settings(), progress=False, frame="pandas")
    assert "seconds_watched" in watch.columns and len(watch) == 0

    rows = [{**r, "_partition": 0, "_offset": i, "_timestamp": 0}
            for i, r in enumerate(_watch(simulated))]  # fmt: skip
    rows[0]["seconds_watched"] = "a lot"
    _fake_reader(monkeypatch, rows)
    with pytest.raises(FrameSchemaError, match="column 'seconds_watched' is String"):
        lab.read_topic("watch-history", settings=Settings(), progress=False)
    unchecked = lab.read_topic("watch-history", settings=Settings(), progress=False,
                               validate=False)  # fmt: skip
    assert unchecked.schema["seconds_watched"] == pl.String
    # A topic without a schema is passed through as read.
    assert lab.read_topic("test-topic", settings=Settings(), progress=False).height == 3


def test_recs_updates_read_though_their_history_lists_mix_types(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recs = RecsApp(ModelHolder(tmp_path))  # no model yet: no version, no factors (all null)
    update = recs.updates([{"user_id": "u1", "history": {"m1": [1, 0.5, 7, "drama"]},
                            "movie_id": "m1", "event_time_ms": 7}])  # fmt: skip
    _fake_reader(monkeypatch, [{**update[0], "_partition": 0, "_offset": 0, "_timestamp": 7}])
    frame = lab.read_topic("recs.user-updates", settings=Settings(), progress=False)
    assert frame.schema["model_version"] == pl.String  # all null: cast, a sure thing
    assert frame.schema["factors"] == pl.List(pl.Float64)
    assert frame["history"].to_list() == [{"m1": ["1", "0.5", "drama"]}]


def test_load_results_validates_and_gives_no_results_their_columns(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert lab.load_results("search_volume", "total", settings).columns == list(
        columns("search_volume/total")
    )
    folder = tmp_path / "processed" / "search_volume" / "per_user" / "date=1970-01-01"
    folder.mkdir(parents=True)
    row = {"user_id": "u1", "window_start": "1970-01-01T00:00:00Z", "window_start_ms": 0,
           "window_ms": 1_800_000, "count": "3"}  # fmt: skip
    pl.DataFrame([row]).write_parquet(folder / "part-x-0-000000000000.parquet")
    with pytest.raises(FrameSchemaError) as caught:
        lab.load_results("search_volume", "per_user", settings)
    assert caught.value.problems == ["column 'count' is String, expected Int64"]
    assert lab.load_results("search_volume", "per_user", settings, validate=False).height == 1


@pytest.mark.integration
def test_read_topic_names_the_column_a_topic_holds_wrongly(empty_kafka: Settings) -> None:
    create_topics(empty_kafka, specs=[WATCH_HISTORY])
    sim = Simulator(SimulationConfig(seed=5, users=50, minutes=90, incident_rates={}))
    watch = [e for e in sim.events() if e.event_type == "watch"][:3]  # type: ignore[attr-defined]
    with EventWriter(empty_kafka) as writer:
        for event in watch:
            writer.send(event)
    assert len(lab.read_topic("watch-history", settings=empty_kafka, progress=False)) == 3

    # Valid JSON of the wrong shape is passed on by the reader (only non-objects are dropped).
    bad = {**json.loads(encode(watch[0])), "seconds_watched": "a lot"}
    raw = producer(empty_kafka)
    raw.produce("watch-history", json.dumps(bad).encode(), key=b"k", partition=0)
    assert raw.flush(30) == 0
    with pytest.raises(FrameSchemaError) as caught:
        lab.read_topic("watch-history", settings=empty_kafka, progress=False)
    (problem,) = caught.value.problems
    assert problem.startswith("column 'seconds_watched' is String, expected Float64 "
                              "(e.g. 'a lot' at partition 0, offset ")  # fmt: skip
    frame = lab.read_topic("watch-history", settings=empty_kafka, progress=False, validate=False)
    assert frame.height == 4
