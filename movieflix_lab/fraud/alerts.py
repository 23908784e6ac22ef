"""Fraud alerts: the one record shape every detector publishes on ``fraud-signals``.

An alert's id is derived from the detector, the entity and the start of the incident as the
detector saw it, so the same incident read twice (a replay after a crash, a second run
over the same events) gives the same id: consumers deduplicate on ``alert_id``, keeping the
highest ``revision`` (a rule revises an alert when a late event moves its decisive event
earlier: :mod:`movieflix_lab.fraud.rules`).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["DETECTORS", "Alert", "alert_id", "iso_ms"]

_NAMESPACE = uuid.UUID("6f1d8a52-3c1e-4d7b-9a55-0e0c2b6f7a10")

#: Every detector, with the entity it alerts on.
DETECTORS: dict[str, Literal["user", "ip"]] = {
    "binge_bot": "user",
    "credential_stuffing": "ip",
    "new_login_activity": "user",
    "impossible_travel": "user",
    "failed_login_burst": "user",
    "river_anomaly": "user",
    "river_ip_anomaly": "ip",
}

Severity = Literal["low", "medium", "high", "critical"]


def alert_id(detector: str, entity_id: str, window_start_ms: int) -> str:
    """A stable id for one incident as one detector saw it.

    >>> alert_id("binge_bot", "u1", 0) == alert_id("binge_bot", "u1", 0)
    True
    >>> alert_id("binge_bot", "u1", 0) == alert_id("binge_bot", "u1", 1)
    False
    """
    return str(uuid.uuid5(_NAMESPACE, f"{detector}/{entity_id}/{window_start_ms}"))


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC.

    >>> iso_ms(0)
    '1970-01-01T00:00:00+00:00'
    """
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@dataclass(frozen=True)
class Alert:
    """One detection: published as JSON on ``fraud-signals``, keyed by ``entity_id``."""

    detector: str
    entity_kind: Literal["user", "ip"]
    entity_id: str
    score: float
    severity: Severity
    window_start_ms: int
    window_end_ms: int
    #: Counts and a few event ids that made the case.
    evidence: dict[str, Any]
    #: The event from which the detector had its evidence, and its event time.
    decisive_event_id: str
    event_time_ms: int
    #: Wall clock when the detector decided (ms).
    detected_at_ms: int
    user_ids: list[str] = field(default_factory=list)
    #: The event whose arrival raised the alert (the decisive one, or later evidence).
    trigger_event_id: str = ""
    alert_id: str = ""
    #: 0 for a new alert; each later-arriving event that moved the decisive event earlier
    #: sends the alert again, same ``alert_id``, one higher (keep the highest).
    revision: int = 0

    def __post_init__(self) -> None:
        if not self.trigger_event_id:
            object.__setattr__(self, "trigger_event_id", self.decisive_event_id)
        if not self.alert_id:
            object.__setattr__(
                self, "alert_id", alert_id(self.detector, self.entity_id, self.window_start_ms)
            )

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["window_start"] = iso_ms(self.window_start_ms)
        record["window_end"] = iso_ms(self.window_end_ms)
        record["event_time"] = iso_ms(self.event_time_ms)
        record["detected_at"] = iso_ms(self.detected_at_ms)
        return record
