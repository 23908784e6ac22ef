"""Quix Streams serializers over the one event codec (:mod:`movieflix_lab.events.codec`)."""

from __future__ import annotations

from typing import Any

from quixstreams.models import Deserializer, SerializationContext, Serializer

from movieflix_lab.events.codec import decode, decode_record, encode
from movieflix_lab.events.models import EventBase

__all__ = ["EventDeserializer", "EventSerializer"]


class EventDeserializer(Deserializer):
    """Bytes → a validated event as a dict (what a StreamingDataFrame row is).

    Canonical events (what the kit writes) take the codec's fast path, anything else the
    full pydantic validation (:func:`~movieflix_lab.events.codec.decode_record`): the
    same record either way. An invalid message raises
    :class:`~movieflix_lab.events.codec.EventDecodeError`, whose message names the field;
    the apps' error callbacks send it to ``dead-letters``.
    """

    def __call__(self, value: bytes, ctx: SerializationContext) -> dict[str, Any]:
        return decode_record(value)


class EventSerializer(Serializer):
    """An event (model or dict) → its JSON bytes, validated on the way out."""

    def __call__(self, value: EventBase | dict[str, Any], ctx: SerializationContext) -> bytes:
        event = value if isinstance(value, EventBase) else decode(value)
        return encode(event)
