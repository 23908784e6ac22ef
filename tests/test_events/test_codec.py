"""The one serialization path: errors name the field, round trips are exact."""

import json
from datetime import UTC, datetime

import pytest

from movieflix_lab.events import (
    EventDecodeError,
    LoginEvent,
    WatchRecord,
    decode,
    decode_batch,
    encode,
)
from movieflix_lab.kafka.serde import EventDeserializer, EventSerializer

WATCH = {
    "event_type": "watch",
    "event_id": "2b1f2a4e-8f7e-4c1e-9b7a-000000000001",
    "user_id": "u1",
    "timestamp": "2026-03-02T20:00:00Z",
    "movie_id": "m1",
    "genre": "drama",
    "session_id": "s1",
    "device_id": "tv-1",
    "started_at": "2026-03-02T18:30:00Z",
    "seconds_watched": 5000.0,
    "movie_duration_s": 6000.0,
    "completion_ratio": 0.83,
}


def _error_fields(data: object) -> list[str]:
    with pytest.raises(EventDecodeError) as caught:
        decode(data if isinstance(data, bytes) else json.dumps(data).encode())
    return [e.field for e in caught.value.errors]


def test_round_trip_is_exact() -> None:
    event = decode(json.dumps(WATCH))
    assert isinstance(event, WatchRecord)
    assert decode(encode(event)) == event
    assert event.timestamp == datetime(2026, 3, 2, 20, tzinfo=UTC)


def test_timestamps_are_normalised_to_utc_and_need_a_zone() -> None:
    event = decode(json.dumps({**WATCH, "timestamp": "2026-03-02T21:00:00+01:00"}))
    assert event.timestamp == datetime(2026, 3, 2, 20, tzinfo=UTC)
    assert _error_fields({**WATCH, "timestamp": "2026-03-02T21:00:00"}) == ["timestamp"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"completion_ratio": 1.5}, "completion_ratio"),
        ({"seconds_watched": -1}, "seconds_watched"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "u1:evil"}, "user_id"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"genre": 7}, "genre"),
        ({"colour": "red"}, "colour"),
        # a rule across fields names the field it is about
        ({"started_at": "2026-03-02T21:00:00Z"}, "started_at"),
        ({"timestamp": 1772481600000}, "timestamp"),  # epoch ms: seconds or ms? refused
    ],
)
def test_invalid_fields_are_named(change: dict, field: str) -> None:
    assert _error_fields({**WATCH, **change}) == [field]


def test_missing_and_unknown_event_types() -> None:
    no_type = {k: v for k, v in WATCH.items() if k != "event_type"}
    assert _error_fields(no_type) == ["event_type"]
    with pytest.raises(EventDecodeError, match="unknown event type 'purchase'"):
        decode(json.dumps({**WATCH, "event_type": "purchase"}))


def test_malformed_json_says_so() -> None:
    with pytest.raises(EventDecodeError, match="malformed JSON"):
        decode(b'{"event_type": "watch",')


def test_newer_schema_versions_are_refused_with_advice() -> None:
    with pytest.raises(EventDecodeError, match="newer than this reader knows"):
        decode(json.dumps({**WATCH, "schema_version": 9}))


def test_login_rules() -> None:
    login = {
        "event_type": "login", "event_id": "2b1f2a4e-8f7e-4c1e-9b7a-000000000002",
        "user_id": "u1", "timestamp": "2026-03-02T20:00:00Z", "ip": "203.0.113.9",
        "device_id": "phone", "country": "DE", "success": True,
    }  # fmt: skip
    assert isinstance(decode(json.dumps(login)), LoginEvent)
    assert _error_fields({**login, "ip": "999.1.1.1"}) == ["ip"]
    assert _error_fields({**login, "country": "Germany"}) == ["country"]
    assert _error_fields({**login, "failure_reason": "bad_password"}) == ["failure_reason"]


def test_batch_errors_carry_the_index() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_batch([WATCH, {**WATCH, "completion_ratio": 2}, "nope"])
    assert [(e.index, e.field) for e in caught.value.errors] == [
        (1, "completion_ratio"), (2, ""),
    ]  # fmt: skip


def test_quix_serializers_use_the_same_codec() -> None:
    from quixstreams.models import SerializationContext

    ctx = SerializationContext(topic="watch-history", field="value")
    event = decode(json.dumps(WATCH))
    raw = EventSerializer()(event, ctx)
    assert raw == encode(event)
    record = EventDeserializer()(raw, ctx)
    assert record["movie_id"] == "m1" and record["timestamp"] == "2026-03-02T20:00:00Z"
    assert EventSerializer()(record, ctx) == raw
    with pytest.raises(EventDecodeError, match="completion_ratio"):
        EventDeserializer()(json.dumps({**WATCH, "completion_ratio": 3}).encode(), ctx)
