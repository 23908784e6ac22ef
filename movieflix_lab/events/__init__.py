"""Event contracts: pydantic models, their JSON Schemas, and the one JSON codec."""

from movieflix_lab.events.codec import (
    EventDecodeError,
    FieldError,
    decode,
    decode_batch,
    decode_record,
    encode,
    to_record,
)
from movieflix_lab.events.models import (
    EVENT_MODELS,
    Event,
    EventBase,
    LoginEvent,
    PauseEvent,
    PlayEvent,
    RateEvent,
    SearchEvent,
    SeekEvent,
    StopEvent,
    WatchRecord,
)

__all__ = [
    "EVENT_MODELS",
    "Event",
    "EventBase",
    "EventDecodeError",
    "FieldError",
    "LoginEvent",
    "PauseEvent",
    "PlayEvent",
    "RateEvent",
    "SearchEvent",
    "SeekEvent",
    "StopEvent",
    "WatchRecord",
    "decode",
    "decode_batch",
    "decode_record",
    "encode",
    "to_record",
]
