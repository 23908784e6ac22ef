"""Hand-made event records (what a stream app's rows look like) for the fraud tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from movieflix_lab.events.codec import to_record
from movieflix_lab.events.models import LoginEvent, PlayEvent, SearchEvent

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def _id() -> uuid.UUID:
    return uuid.UUID(int=next(_ids), version=4)


def play(user: str, at: timedelta, *, device: str = "tv-1", movie: str | None = None,
         position: float = 0.0) -> dict[str, Any]:  # fmt: skip
    return to_record(PlayEvent(
        event_id=_id(), user_id=user, timestamp=T0 + at, movie_id=movie or f"m{next(_ids)}",
        session_id="s1", device_id=device, position_s=position,
    ))  # fmt: skip


def login(user: str, at: timedelta, *, ip: str = "23.1.2.3", country: str = "US",
          device: str = "tv-1", success: bool = True) -> dict[str, Any]:  # fmt: skip
    return to_record(LoginEvent(
        event_id=_id(), user_id=user, timestamp=T0 + at, ip=ip, device_id=device,
        country=country, success=success, failure_reason=None if success else "bad_password",
    ))  # fmt: skip


def search(user: str, at: timedelta, *, device: str = "tv-1") -> dict[str, Any]:
    return to_record(SearchEvent(
        event_id=_id(), user_id=user, timestamp=T0 + at, query="space opera", result_count=3,
        device_id=device,
    ))  # fmt: skip


def seconds(s: float) -> timedelta:
    return timedelta(seconds=s)
