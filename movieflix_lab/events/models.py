"""The event contracts: one pydantic model per event type MovieFlix devices send.

Every event carries ``event_id`` (a UUID, so redelivered copies can be recognised),
``event_type`` (the discriminator), ``user_id``, ``timestamp`` (event time, UTC) and
``schema_version``. Models are strict about shape (unknown fields are refused, so a typo in
a client is caught at the gateway) and frozen.

Schema evolution: each model carries its own ``SCHEMA_VERSION``. A reader accepts every
version up to its own and refuses newer ones with a message saying so. A change to a
model's JSON Schema without a version bump fails ``tests/test_events/test_schemas.py``;
new fields must be optional so the current model still reads every older version's data
(checked against the examples in ``movieflix_lab/schemas/examples/``).

Examples
--------
>>> from movieflix_lab.events.codec import decode
>>> e = decode(b'{"event_type": "rate", "event_id": "7d0f4d4e-6c55-4a39-9c39-2f1b1d1c0a01", '
...            b'"user_id": "u1", "timestamp": "2026-03-02T20:15:00+01:00", "movie_id": "m7", '
...            b'"rating": 5}')
>>> type(e).__name__, e.timestamp.isoformat(), e.schema_version
('RateEvent', '2026-03-02T19:15:00+00:00', 1)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, get_args
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    field_validator,
    model_validator,
)

__all__ = [
    "EVENT_MODELS",
    "Event",
    "LoginEvent",
    "PauseEvent",
    "PlayEvent",
    "RateEvent",
    "SearchEvent",
    "SeekEvent",
    "StopEvent",
    "WatchRecord",
]

Identifier: TypeAlias = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$"),
]
"""An id of a user, movie, device or session: letters, digits and ``_ . @ -`` (no ``:``,
which separates the parts of the watch-history key)."""

#: Timezone-aware; normalised to UTC on validation, so JSON carries ``...Z`` (pydantic's own
#: serializer, no Python-level hook on the hot path).
UtcDatetime: TypeAlias = AwareDatetime
Seconds: TypeAlias = Annotated[float, Field(ge=0, le=30 * 24 * 3600)]
IpAddress: TypeAlias = IPvAnyAddress


class EventBase(BaseModel):
    """The fields every event has."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: UUID
    user_id: Identifier
    timestamp: UtcDatetime = Field(description="Event time, when it happened on the device.")
    schema_version: int = Field(default=1, ge=1, description="The contract version written.")

    @field_validator("timestamp", "started_at", mode="before", check_fields=False)
    @classmethod
    def _not_a_number(cls, value: Any) -> Any:
        # pydantic would read a number as epoch seconds or milliseconds, by its size: too
        # easy to get wrong by a factor of 1000, and the contract says a date-time string.
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("must be a date-time string (RFC 3339, e.g. 2026-11-24T18:00:00Z)")
        return value

    @field_validator("timestamp", "started_at", mode="after", check_fields=False)
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="before")
    @classmethod
    def _known_version(cls, data: Any) -> Any:
        if isinstance(data, dict):
            version = data.get("schema_version", cls.SCHEMA_VERSION)
            if isinstance(version, int) and version > cls.SCHEMA_VERSION:
                raise ValueError(
                    f"schema_version {version} is newer than this reader knows "
                    f"({cls.SCHEMA_VERSION}): upgrade movieflix-lab"
                )
            if "schema_version" not in data:
                data = {**data, "schema_version": cls.SCHEMA_VERSION}
        return data

    @property
    def timestamp_ms(self) -> int:
        """Event time in epoch milliseconds (the Kafka record timestamp)."""
        return int(self.timestamp.timestamp() * 1000)


class _Playback(EventBase):
    movie_id: Identifier
    session_id: Identifier = Field(description="The viewing session the event belongs to.")
    device_id: Identifier


class PlayEvent(_Playback):
    """Playback of a movie started (or resumed) at ``position_s``."""

    event_type: Literal["play"] = "play"
    position_s: Seconds = 0.0


class PauseEvent(_Playback):
    event_type: Literal["pause"] = "pause"
    position_s: Seconds


class SeekEvent(_Playback):
    event_type: Literal["seek"] = "seek"
    from_position_s: Seconds
    to_position_s: Seconds


class StopEvent(_Playback):
    """Playback stopped; the session's watch-history record follows."""

    event_type: Literal["stop"] = "stop"
    position_s: Seconds


class RateEvent(EventBase):
    event_type: Literal["rate"] = "rate"
    movie_id: Identifier
    rating: int = Field(ge=1, le=5, description="Stars, 1 to 5.")


class SearchEvent(EventBase):
    event_type: Literal["search"] = "search"
    query: str = Field(min_length=1, max_length=200)
    result_count: int = Field(ge=0)
    device_id: Identifier


class LoginEvent(EventBase):
    """A login attempt.

    Version 2 added ``failure_reason`` (optional), so version-1 data still reads.
    """

    SCHEMA_VERSION: ClassVar[int] = 2

    event_type: Literal["login"] = "login"
    ip: IpAddress
    device_id: Identifier
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code.")
    success: bool
    failure_reason: Literal["bad_password", "unknown_user", "locked", "mfa_failed"] | None = None
    schema_version: int = Field(default=2, ge=1, description="The contract version written.")

    @model_validator(mode="after")
    def _reason_only_on_failure(self) -> LoginEvent:
        if self.success and self.failure_reason is not None:
            raise ValueError("failure_reason is only allowed when success is false")
        return self


class WatchRecord(EventBase):
    """One finished viewing session: the record ``watch-history`` keeps."""

    event_type: Literal["watch"] = "watch"
    movie_id: Identifier
    genre: str = Field(min_length=1, max_length=40)
    session_id: Identifier
    device_id: Identifier
    started_at: UtcDatetime
    seconds_watched: Seconds
    movie_duration_s: Annotated[float, Field(gt=0, le=24 * 3600)]
    completion_ratio: float = Field(ge=0, le=1, description="Share of the movie watched.")

    @model_validator(mode="after")
    def _started_before_end(self) -> WatchRecord:
        if self.started_at > self.timestamp:
            raise ValueError("started_at must not be after timestamp (the end of the session)")
        return self


Event: TypeAlias = Annotated[
    PlayEvent
    | PauseEvent
    | SeekEvent
    | StopEvent
    | RateEvent
    | SearchEvent
    | LoginEvent
    | WatchRecord,
    Field(discriminator="event_type"),
]
"""Any event; ``event_type`` picks the model."""

#: The model of each ``event_type``, read off the union so the two cannot disagree.
EVENT_MODELS: dict[str, type[EventBase]] = {
    model.model_fields["event_type"].default: model for model in get_args(get_args(Event)[0])
}
