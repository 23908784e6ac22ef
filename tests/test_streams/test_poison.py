"""Poison input at 1%: every malformed message reaches ``dead-letters``, no app stops, and what
the apps compute from the rest equals a batch computation over the clean events.

The backlog migrates from JSON to Avro halfway (``MOVIEFLIX_WIRE_FORMAT``): every topic holds
both formats, every app reads both, and the Avro poison (an unknown fingerprint, a cut
datum, a valid datum breaking a contract) reaches ``dead-letters`` with its reason.

Every stream app (analytics, fraud, recs) reads a backlog in which one message in a hundred,
spread over all four source topics, is malformed in one of several ways. The throughput cost
of the poison (goal: ≥ 0.9 of a clean run) is measured by ``benchmarks/poison.py``, not here.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.events.avro import MAGIC, encode_avro
from movieflix_lab.events.codec import to_record
from movieflix_lab.fraud import FraudDetector
from movieflix_lab.kafka.catalog import RECS_UPDATES, create_topics
from movieflix_lab.kafka.client import consumer, producer
from movieflix_lab.kafka.event_writer import EventWriter
from movieflix_lab.simulate import SimulationConfig, Simulator
from movieflix_lab.sinks.parquet import read_results
from movieflix_lab.streams.runner import APP_INPUTS, GENRE_KEYS, run_app
from tests.fixtures.kafka import with_settings
from tests.fixtures.streams import (
    ANALYTICS,
    batch_windows,
    heartbeats,
    watch_frame,
)

pytestmark = pytest.mark.slow

INCIDENTS = {"binge_bot": 4.0, "credential_stuffing": 4.0}
CONFIG = SimulationConfig(seed=23, users=600, movies=300, minutes=180, activity=12,
                          incident_rates=INCIDENTS)  # fmt: skip
SOURCES = ("user-interactions", "watch-history", "search-events", "login-events")
RULES = ("binge_bot", "credential_stuffing", "impossible_travel", "new_login_activity",
         "failed_login_burst")  # fmt: skip


def _poison(rng: random.Random, n: int) -> bytes:
    """One of the ways a message goes bad."""
    kinds = [
        lambda: b"{not json",
        lambda: b"\xff\xfe\x00 binary " + rng.randbytes(8),
        lambda: b"[1, 2, 3]",
        lambda: b"null",
        lambda: json.dumps({"event_type": "watch", "user_id": f"u{n}"}).encode(),  # fields missing
        lambda: json.dumps({"event_type": "teleport", "user_id": "u1"}).encode(),  # unknown type
        lambda: json.dumps(
            {
                "event_type": "search",
                "event_id": "not-a-uuid",
                "user_id": "u1",
                "timestamp": "2026-11-23T18:00:00Z",
                "query": "x",
                "result_count": -3,
                "device_id": "d",
            }
        ).encode(),  # invalid id and count
        lambda: b'{"event_type": "play", "user_id": ' + b"9" * 5000 + b"}",
        # Avro: a fingerprint no version has, a cut datum, a valid datum breaking a contract.
        lambda: MAGIC + rng.randbytes(8) + AVRO_RATE[10:],
        lambda: AVRO_RATE[: rng.randrange(11, len(AVRO_RATE))],
        lambda: encode_avro({**RATE, "rating": 9}),
    ]
    return rng.choice(kinds)()


RATE = {"event_id": "5be52bca-0a40-4349-b454-df935ea7e54f", "user_id": "u1",
        "event_type": "rate", "timestamp": "2026-11-23T18:00:00Z", "movie_id": "m1",
        "rating": 4, "schema_version": 1}  # fmt: skip
AVRO_RATE = encode_avro(RATE)
#: What a dead letter of each Avro poison says.
AVRO_REASONS = ("unknown Avro schema fingerprint", "undecodable Avro datum",
                "rating: Input should be less than or equal to 5")  # fmt: skip


def _dead_letters(settings: Settings) -> list[dict[str, Any]]:
    reader = consumer(settings)
    reader.assign([TopicPartition("dead-letters", p, 0) for p in range(settings.topic_partitions)])
    letters: list[dict[str, Any]] = []
    quiet = 0
    while quiet < 4:
        batch = [json.loads(m.value()) for m in reader.consume(1000, timeout=0.5) if not m.error()]
        letters += batch
        quiet = 0 if batch else quiet + 1
    reader.close()
    return letters


@pytest.fixture(scope="module")
def poisoned(clean_kafka: Settings, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("poison")
    settings = with_settings(clean_kafka, fraud_model_dir=home / "fraud",
                             recs_model_dir=home / "recs")  # fmt: skip
    create_topics(settings)
    events = list(Simulator(CONFIG).events())
    rng = random.Random(7)
    poison: dict[tuple[str, int, int], bytes] = {}
    out = producer(settings)

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        poison[(message.topic(), message.partition(), message.offset())] = message.value()

    with EventWriter(settings) as writer:
        for n, event in enumerate(events):
            # A migration to Avro halfway through: every topic holds both formats.
            writer.wire_format = "json" if n < len(events) // 2 else "avro"
            writer.send(event)
            if rng.random() < 0.01:  # one in a hundred, interleaved, on every source topic
                out.produce(rng.choice(SOURCES), key=f"u{rng.randrange(600)}".encode(),
                            value=_poison(rng, n), on_delivery=delivered)  # fmt: skip
                out.poll(0)
    assert out.flush(30) == 0
    runs = {name: run_app(settings, name, timeout=5, options=ANALYTICS)
            for name in ("analytics", "fraud", "recs")}  # fmt: skip
    heartbeats(settings, max(e.timestamp_ms for e in events))  # close the last windows
    runs["analytics-2"] = run_app(settings, "analytics", timeout=5, options=ANALYTICS)
    return settings, events, poison, runs


def test_every_malformed_message_reaches_dead_letters_and_no_app_stops(poisoned) -> None:  # type: ignore[no-untyped-def]
    settings, events, poison, runs = poisoned
    assert 0.007 * len(events) < len(poison) < 0.013 * len(events)
    assert {topic for topic, _, _ in poison} == set(SOURCES)
    for name, run in runs.items():
        assert run.outstanding == 0, (name, run)  # read everything: nothing stopped it
    letters = _dead_letters(settings)
    for app, inputs in APP_INPUTS.items():
        expected = {origin for origin in poison if origin[0] in inputs}
        got = {(d["origin"]["topic"], d["origin"]["partition"], d["origin"]["offset"])
               for d in letters if d["app"] == app}  # fmt: skip
        assert got == expected, app
    # Each dead letter carries the bytes as they came and says what was wrong.
    avro = 0
    for letter in letters:
        origin = letter["origin"]
        raw = poison[(origin["topic"], origin["partition"], origin["offset"])]
        kept = letter["value"].get("text")
        if kept is not None:
            assert kept == raw.decode()
        else:
            assert base64.b64decode(letter["value"]["base64"]) == raw
        assert letter["error"]
        if raw[:2] == MAGIC:
            avro += 1
            assert any(reason in letter["error"] for reason in AVRO_REASONS), letter["error"]
    assert avro >= 3


def test_the_rest_is_computed_as_if_the_poison_was_not_there(poisoned) -> None:  # type: ignore[no-untyped-def]
    settings, events, _, _ = poisoned
    # Analytics: genre windows equal the batch computation over the clean events.
    got = read_results(settings.processed_dir / "genre_watch_time" / "tumbling", GENRE_KEYS)
    expected = batch_windows(
        watch_frame(events), ["genre"], ANALYTICS.genre.window, None, "seconds"
    )
    joined = got.join(expected, on=["genre", "window_start_ms"], how="full", coalesce=True)
    assert got.height == expected.height > 50
    assert (joined["count"] == joined["count_right"]).all()
    assert ((joined["sum_seconds"] - joined["sum"]).abs() < 1e-6).all()
    # Fraud: the per-user rule alerts of a batch run over the clean events, ids and all.
    reader = consumer(settings)
    reader.assign([TopicPartition("fraud-signals", p, 0) for p in range(settings.topic_partitions)])
    alerts = [json.loads(m.value()) for _ in range(8) for m in reader.consume(1000, timeout=0.5)
              if not m.error()]  # fmt: skip
    reader.close()
    batch = FraudDetector(model=None).run(
        to_record(e) for e in sorted(events, key=lambda e: e.timestamp_ms)
    )
    user_alerts = {(a.detector, a.alert_id) for a in batch if a.entity_kind == "user"}
    assert len(user_alerts) >= 5
    assert {(a["detector"], a["alert_id"]) for a in alerts
            if a["detector"] in RULES and a["entity_kind"] == "user"} == user_alerts  # fmt: skip
    # Recommendations: each viewer's latest update holds their whole history, movie by movie.
    reader = consumer(settings)
    reader.assign([TopicPartition(RECS_UPDATES.name, p, 0)
                   for p in range(settings.topic_partitions)])  # fmt: skip
    latest: dict[str, dict[str, Any]] = {}
    for _ in range(8):
        for m in reader.consume(1000, timeout=0.5):
            if not m.error() and m.value():
                latest[m.key().decode()] = json.loads(m.value())  # in offset order per key
    reader.close()
    watched: dict[str, set[str]] = {}
    for e in events:
        if e.event_type == "watch":
            watched.setdefault(e.user_id, set()).add(e.movie_id)  # type: ignore[attr-defined]
    assert len(watched) > 100
    assert {user: set(update["history"]) for user, update in latest.items()} == watched
