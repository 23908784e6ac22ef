"""The fraud app's deserializer: what no detector reads is skipped, but still validated."""

from __future__ import annotations

import json

import pytest
from quixstreams.models import MessageField, SerializationContext

from movieflix_lab.events import EventDecodeError, encode
from movieflix_lab.events.codec import decode_record
from movieflix_lab.simulate import SimulationConfig, Simulator
from movieflix_lab.streams.fraud import SKIPPED, FraudEvents

CTX = SerializationContext(topic="user-interactions", field=MessageField.VALUE)


def _first(kind: str, **where: object) -> bytes:
    for event in Simulator(SimulationConfig(seed=2, users=50, minutes=60)).events():
        record = json.loads(encode(event))
        if record["event_type"] == kind and all(record.get(k) == v for k, v in where.items()):
            return encode(event)
    raise AssertionError(f"no {kind} event")


def test_events_no_detector_reads_are_skipped_in_any_valid_spelling() -> None:
    deserialize = FraudEvents()
    pause = _first("pause")
    assert deserialize(pause, CTX) is SKIPPED
    other = json.loads(pause)
    other["event_id"] = other["event_id"].upper()  # valid, not canonical: pydantic decides
    assert deserialize(json.dumps(other).encode(), CTX) is SKIPPED


def test_an_invalid_skipped_event_still_raises_naming_its_field() -> None:
    bad = json.loads(_first("pause"))
    bad["position_s"] = -1
    with pytest.raises(EventDecodeError) as caught:
        FraudEvents()(json.dumps(bad).encode(), CTX)
    assert [e.field for e in caught.value.errors] == ["position_s"]


def test_what_a_detector_reads_is_decoded_as_every_app_decodes_it() -> None:
    for data in (_first("play", position_s=0.0), _first("login"), _first("search")):
        assert FraudEvents()(data, CTX) == decode_record(data)
