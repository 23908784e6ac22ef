"""Avro from the same contracts: checked-in schemas, the single-object encoding, evolution by
Avro's own resolution rules (fastavro), and the errors a reader names."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import fastavro
import pytest
from fastavro.read import SchemaResolutionError

from movieflix_lab.events import EVENT_MODELS
from movieflix_lab.events.avro import (
    AVRO_DIR,
    MAGIC,
    TOPIC_EVENT_TYPES,
    avro_from_json_schema,
    avro_path,
    avro_schema,
    backward_problems,
    check_avro_schemas,
    encode_avro,
    fingerprint,
    resolution_problems,
)
from movieflix_lab.events.codec import EventDecodeError, decode_record, encode, loads, to_record
from movieflix_lab.events.schemas import SCHEMA_DIR, current_schema
from movieflix_lab.kafka.event_writer import TOPIC_BY_EVENT_TYPE
from movieflix_lab.simulate import SimulationConfig, Simulator

EXAMPLES = sorted((SCHEMA_DIR / "examples").glob("*.json"))


def _written_with(schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    """``datum`` in the single-object encoding of ``schema`` (any version, as its writer had
    it), written by fastavro with the schema's logical types."""
    out = io.BytesIO()
    out.write(MAGIC + fingerprint(schema).to_bytes(8, "little"))
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), datum)
    return out.getvalue()


def _reads(writer: dict[str, Any], reader: dict[str, Any], datum: dict[str, Any]) -> bool:
    """Whether fastavro resolves ``datum`` written with ``writer`` into ``reader``."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(writer), datum)
    out.seek(0)
    try:
        fastavro.schemaless_reader(
            out, fastavro.parse_schema(writer), fastavro.parse_schema(reader)
        )
    except (SchemaResolutionError, ValueError, TypeError, KeyError):
        return False
    return True


def test_every_avro_file_is_what_its_json_schema_gives() -> None:
    assert check_avro_schemas() == []
    for event_type, model in EVENT_MODELS.items():  # and the newest is the model's own
        on_disk = json.loads(avro_path(event_type, model.SCHEMA_VERSION).read_text())
        assert on_disk == avro_from_json_schema(current_schema(model))
        fastavro.parse_schema(on_disk)  # a schema Avro accepts


def test_a_contract_change_without_a_version_bump_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Avro twin follows the versioned JSON Schema, which a changed model no longer
    matches: the change must come with a new version, and then a new Avro file."""
    from pydantic import create_model

    from movieflix_lab.events.models import RateEvent
    from movieflix_lab.events.schemas import check_schemas

    changed = create_model("RateEvent", __base__=RateEvent, comment=(str | None, None))
    monkeypatch.setitem(EVENT_MODELS, "rate", changed)
    on_disk = json.loads(avro_path("rate", 1).read_text())
    assert avro_from_json_schema(current_schema(changed)) != on_disk
    assert any("bump RateEvent.SCHEMA_VERSION" in p for p in check_schemas())


def test_each_topic_has_the_union_of_its_types_and_routing_agrees() -> None:
    routed: dict[str, set[str]] = {}
    for event_type, spec in TOPIC_BY_EVENT_TYPE.items():
        routed.setdefault(spec.name, set()).add(event_type)
    assert {t: set(types) for t, types in TOPIC_EVENT_TYPES.items()} == routed
    for topic, types in TOPIC_EVENT_TYPES.items():
        union = json.loads((AVRO_DIR / "topics" / f"{topic}.avsc").read_text())
        assert [r["name"] for r in union] == [EVENT_MODELS[t].__name__ for t in types]
        fastavro.parse_schema(union)


def test_logical_types_a_consumer_expects() -> None:
    fields = {f["name"]: f["type"] for f in avro_schema("watch", 1)["fields"]}
    assert fields["event_id"] == {"type": "string", "logicalType": "uuid"}
    assert fields["timestamp"] == fields["started_at"] == {
        "type": "long", "logicalType": "timestamp-micros"}  # fmt: skip
    reason = {f["name"]: f for f in avro_schema("login", 2)["fields"]}["failure_reason"]
    assert reason["type"][0] == "null" and reason["type"][1]["type"] == "enum"
    assert reason["default"] is None


@pytest.fixture(scope="module")
def simulated() -> list[Any]:
    rates = {"credential_stuffing": 2.0, "binge_bot": 2.0, "account_takeover": 2.0,
             "shared_ip": 2.0}  # fmt: skip
    config = SimulationConfig(seed=12, users=200, minutes=180, late_share=0.05,
                              incident_rates=rates)  # fmt: skip
    return list(Simulator(config).events())


def test_every_simulated_event_reads_back_the_same_from_avro(simulated) -> None:  # type: ignore[no-untyped-def]
    assert {e.event_type for e in simulated} == set(EVENT_MODELS)
    json_bytes = avro_bytes = 0
    for event in simulated:
        as_json, as_avro = encode(event), encode(event, "avro")
        assert as_avro[:2] == MAGIC
        assert decode_record(as_avro) == decode_record(as_json) == to_record(event)
        assert loads(as_avro) == loads(as_json)
        json_bytes, avro_bytes = json_bytes + len(as_json), avro_bytes + len(as_avro)
    assert avro_bytes < 0.6 * json_bytes  # the point of a binary format


def test_microseconds_survive_the_trip() -> None:
    record = decode_record(b'{"event_id":"5be52bca-0a40-4349-b454-df935ea7e54f","user_id":"u1",'
                           b'"timestamp":"2026-11-29T18:00:07.000123Z","event_type":"rate",'
                           b'"movie_id":"m1","rating":4}')  # fmt: skip
    assert decode_record(encode_avro(record))["timestamp"] == "2026-11-29T18:00:07.000123Z"


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_versions_example_written_with_its_own_schema_reads(example) -> None:  # type: ignore[no-untyped-def]
    """Each version's example, written with that version's Avro schema (by fastavro, logical
    types and all), reads through the current reader schema as its JSON reads."""
    event_type, version = example.stem.split(".v")
    data = json.loads(example.read_text())
    datum = {**data, "timestamp": fastavro_time(data["timestamp"])}
    if "started_at" in data:
        datum["started_at"] = fastavro_time(data["started_at"])
    wire = _written_with(avro_schema(event_type, int(version)), datum)
    assert decode_record(wire) == decode_record(example.read_bytes())
    assert decode_record(wire)["schema_version"] == int(version)


def fastavro_time(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_real_versions_are_backward_compatible() -> None:
    for event_type in EVENT_MODELS:
        assert backward_problems(event_type) == [], event_type


def _login(version: int = 2) -> dict[str, Any]:
    return copy.deepcopy(avro_schema("login", version))


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _example() -> dict[str, Any]:
    data = json.loads((SCHEMA_DIR / "examples" / "login.v2.json").read_text())
    return {**data, "timestamp": fastavro_time(data["timestamp"])}


BREAKING = {
    "a field added without a default": (
        lambda s: s["fields"].append({"name": "risk", "type": "double"}), "risk: added without"),
    "a type changed to one Avro does not promote": (
        lambda s: _field(s, "success").update(type="string"), "success: type changed"),
    "a string made a number": (
        lambda s: _field(s, "country").update(type="long"), "country: type changed"),
    "an enum symbol removed": (
        lambda s: _field(s, "failure_reason")["type"][1].update(
            symbols=["bad_password", "unknown_user", "locked"]), "failure_reason:"),
    "an optional field made required": (lambda s: _required(_field(s, "failure_reason")),
                                        "failure_reason:"),
}  # fmt: skip


def _required(field: dict[str, Any]) -> None:
    field["type"] = field["type"][1]
    del field["default"]


@pytest.mark.parametrize("change", BREAKING, ids=list(BREAKING))
def test_a_breaking_change_is_refused_naming_the_field(change: str) -> None:
    mutate, said = BREAKING[change]
    reader = _login()
    mutate(reader)
    problems = backward_problems("login", reader)
    assert problems and any(said in p for p in problems), problems
    assert all(p.startswith("login v") for p in problems)
    # Avro's own resolution (fastavro) agrees: version-2 data written so does not read (the
    # datum with the value the change breaks: a removed symbol, a missing reason).
    datum = {**_example(), **WRITTEN.get(change, {})}
    assert not _reads(_login(), reader, datum)


WRITTEN = {"an enum symbol removed": {"failure_reason": "mfa_failed"},
           "an optional field made required": {"failure_reason": None}}  # fmt: skip


def test_removing_a_field_without_a_default_is_refused() -> None:
    reader = _login()
    reader["fields"] = [f for f in reader["fields"] if f["name"] != "country"]
    assert backward_problems("login", reader) == [
        "login v1: country: removed, and version 1 wrote it without a default",
        "login v2: country: removed, and version 2 wrote it without a default",
    ]


def test_compatible_changes_pass_and_read() -> None:
    reader = _login()
    reader["fields"].append({"name": "risk", "type": ["null", "double"], "default": None})
    _field(reader, "failure_reason")["type"][1]["symbols"].append("captcha_failed")
    assert backward_problems("login", reader) == []
    assert resolution_problems(_login(1), reader) == []
    assert _reads(_login(), reader, _example())


def _rate_avro(**changes: Any) -> bytes:
    record = {"event_id": "5be52bca-0a40-4349-b454-df935ea7e54f", "user_id": "u1",
              "timestamp": "2026-11-29T18:00:07Z", "event_type": "rate", "movie_id": "m1",
              "rating": 4, "schema_version": 1, **changes}  # fmt: skip
    return encode_avro(record)


def test_what_a_reader_refuses_it_names() -> None:
    good = _rate_avro()
    cases = {
        b"\xc3\x01" + b"\x00" * 8 + good[10:]: "unknown Avro schema fingerprint",
        good[:-3]: "undecodable Avro datum of rate v1",
        good + b"\x00": "1 bytes after the Avro datum",
        good[:6]: "not an Avro single-object message",
        _rate_avro(rating=9): "rating: Input should be less than or equal to 5",
        _rate_avro(user_id="u 1"): "user_id:",
        _rate_avro(event_id="not-a-uuid"): "event_id:",
    }
    for data, said in cases.items():
        with pytest.raises(EventDecodeError) as error:
            decode_record(data)
        assert said in str(error.value), (said, str(error.value))
