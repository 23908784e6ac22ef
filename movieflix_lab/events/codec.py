"""The one serialization path: events to JSON bytes and back.

The gateway, the simulator and the stream apps all call :func:`encode` and :func:`decode`
(the Quix serializers in :mod:`movieflix_lab.kafka.serde` wrap them), so a malformed message
is caught in one place, with an error that names the field.

Examples
--------
>>> from movieflix_lab.events.models import SearchEvent
>>> event = SearchEvent(event_id="00000000-0000-4000-8000-000000000001", user_id="u1",
...                     timestamp="2026-03-02T10:00:00Z", query="space opera",
...                     result_count=12, device_id="d1")
>>> decode(encode(event)) == event
True
>>> try:
...     decode(b'{"event_type": "rate", "event_id": "00000000-0000-4000-8000-000000000002",'
...            b' "user_id": "u1", "timestamp": "2026-03-02T10:00:00Z", "movie_id": "m1",'
...            b' "rating": 9}')
... except EventDecodeError as error:
...     print(error)
rating: Input should be less than or equal to 5
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import orjson
from pydantic import TypeAdapter, ValidationError

from movieflix_lab.events.avro import MAGIC as AVRO_MAGIC
from movieflix_lab.events.avro import avro_json, encode_avro
from movieflix_lab.events.fast import WireEvent, fast_record
from movieflix_lab.events.models import EVENT_MODELS, Event, EventBase

__all__ = [
    "EventDecodeError",
    "FieldError",
    "WireFormat",
    "decode",
    "decode_batch",
    "decode_record",
    "encode",
    "event_json_schema",
    "loads",
    "to_record",
]

#: How events are written to Kafka (``MOVIEFLIX_WIRE_FORMAT``); readers take both.
WireFormat: TypeAlias = Literal["json", "avro"]

_EVENT = TypeAdapter[Event](Event)
_KNOWN_TYPES = ", ".join(sorted(EVENT_MODELS))


@dataclass(frozen=True)
class FieldError:
    """One problem: the field's dotted path (``""`` for the whole body) and what is wrong."""

    field: str
    message: str
    index: int | None = None

    def __str__(self) -> str:
        where = f"[{self.index}] " if self.index is not None else ""
        return f"{where}{self.field or 'body'}: {self.message}"


class EventDecodeError(ValueError):
    """Bytes or a dict that are not a valid event; ``errors`` names every bad field."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(error) for error in self.errors))


_FIELDS = {name for model in EVENT_MODELS.values() for name in model.model_fields}


def _field_errors(exc: ValidationError, index: int | None = None) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        kind = error["type"]
        if kind == "union_tag_not_found":
            errors.append(FieldError("event_type", "missing: every event needs one", index))
            continue
        if kind == "union_tag_invalid":
            given = (error.get("ctx") or {}).get("tag", "?")
            message = f"unknown event type {given!r}; expected one of {_KNOWN_TYPES}"
            errors.append(FieldError("event_type", message, index))
            continue
        if loc and loc[0] in EVENT_MODELS:  # the discriminator's tag comes first
            loc = loc[1:]
        message = error["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown field"
        if not loc:  # a model-level rule: its message starts with the field it is about
            first = message.split(" ", 1)[0]
            if first in _FIELDS:
                loc = [first]
        errors.append(FieldError(".".join(str(part) for part in loc), message, index))
    return errors


def decode(data: bytes | str | dict[str, Any]) -> EventBase:
    """Validate one event from JSON bytes/str or a dict; raise :class:`EventDecodeError`."""
    try:
        if isinstance(data, dict):
            return _EVENT.validate_python(data)
        return _EVENT.validate_json(data)
    except ValidationError as exc:
        errors = _field_errors(exc)
        if not isinstance(data, dict) and any(e.message.startswith("Invalid JSON") for e in errors):
            raise EventDecodeError([FieldError("", _json_problem(data))]) from None
        raise EventDecodeError(errors) from None


def _json_problem(data: bytes | str) -> str:
    try:
        json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"malformed JSON: {exc}"
    return "malformed JSON"


def decode_record(data: bytes) -> dict[str, Any]:
    """``to_record(decode(data))``, the fast way when ``data`` is a canonical event.

    ``data`` may be JSON or Avro's single-object encoding (:mod:`movieflix_lab.events.avro`,
    ``MOVIEFLIX_WIRE_FORMAT=avro``): an Avro message is resolved into its type's current
    schema and then validated as its JSON would be; an unknown schema fingerprint or bytes
    that are no datum of it raise :class:`EventDecodeError` saying so. A topic may hold both.

    What the kit's gateway and simulator write takes the fast path
    (:mod:`movieflix_lab.events.fast`: the same contracts, checked by msgspec); anything
    else — another spelling, or an invalid event — is validated by pydantic, and an invalid
    one raises :class:`EventDecodeError` naming the field, as :func:`decode` does.
    """
    if data[:2] == AVRO_MAGIC:  # Avro's single-object encoding: resolved, then validated
        try:
            data = avro_json(data)
        except ValueError as exc:
            raise EventDecodeError([FieldError("", str(exc))]) from None
    record = fast_record(data)
    if record is not None:
        return record
    return to_record(decode(data))


def loads(data: bytes) -> Any:
    """A Kafka value as JSON data, unvalidated, whichever wire format wrote it: JSON as it
    is, an event in Avro's single-object encoding resolved into its type's current schema
    (what readers of whole topics, such as ``read_topic``, take). Raises ``ValueError``
    when it is neither."""
    if data[:2] == AVRO_MAGIC:
        data = avro_json(data)
    return orjson.loads(data)


def decode_batch(items: Sequence[Any]) -> list[EventBase]:
    """Validate a list of already-parsed JSON objects; errors carry each item's index."""
    events: list[EventBase] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(FieldError("", "each event must be a JSON object", index))
            continue
        try:
            events.append(_EVENT.validate_python(item))
        except ValidationError as exc:
            errors.extend(_field_errors(exc, index))
    if errors:
        raise EventDecodeError(errors)
    return events


def encode(event: EventBase | WireEvent, wire_format: WireFormat = "json") -> bytes:
    """The bytes of an event: by default its JSON, exactly the body the gateway accepts;
    ``wire_format="avro"``: Avro's single-object encoding of its current schema."""
    if wire_format == "avro":
        return encode_avro(event.record if isinstance(event, WireEvent) else to_record(event))
    if isinstance(event, WireEvent):
        return event.encode()
    return event.model_dump_json(exclude_none=True).encode()


def to_record(event: EventBase) -> dict[str, Any]:
    """The event as a JSON-compatible dict (what a stream app's value looks like)."""
    return event.model_dump(mode="json", exclude_none=True)


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of any one event (the discriminated union)."""
    return _EVENT.json_schema()
