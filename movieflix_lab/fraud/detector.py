"""Rules and the online model together: what the stream app runs, usable without Kafka.

:class:`FraudDetector` takes one entity's memory and its next event and returns alerts;
the stream app keeps memories in Quix state, :meth:`FraudDetector.run` in dicts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from movieflix_lab.fraud.alerts import Alert
from movieflix_lab.fraud.model import OnlineFraudModel
from movieflix_lab.fraud.rules import (
    Memory,
    RuleConfig,
    event_time_ms,
    ip_rules_step,
    normalise_ip,
    user_rules_step,
)

__all__ = ["FraudDetector", "relevant_kind"]


def relevant_kind(event_type: str, position_s: float | None = None) -> bool:
    """Whether an event of this type (a play: at this position) feeds any detector.

    >>> relevant_kind("play", 0), relevant_kind("play", 31.5), relevant_kind("pause", 0)
    (True, False, False)
    """
    return event_type in ("login", "search", "watch") or (event_type == "play" and not position_s)


@dataclass
class FraudDetector:
    """Every detector: the rules (exact windows) and the River model (``river_anomaly`` on
    users, ``river_ip_anomaly`` on IPs).

    >>> from movieflix_lab.simulate.traffic import SimulationConfig, Simulator
    >>> from movieflix_lab.events.codec import to_record
    >>> sim = Simulator(SimulationConfig(seed=5, users=100, minutes=60,
    ...                 incident_rates={"credential_stuffing": 3.0}))
    >>> alerts = FraudDetector().run(to_record(e) for e in sim.events())
    >>> sorted(a.entity_id for a in alerts if a.detector == "credential_stuffing") == sorted(
    ...     i.entity_id for i in sim.incidents if i.decisive_event_id)
    True
    """

    rules: RuleConfig = field(default_factory=RuleConfig)
    model: OnlineFraudModel | None = field(default_factory=OnlineFraudModel)
    clock: Callable[[], float] = time.time
    users: dict[str, Memory] = field(default_factory=dict)
    ips: dict[str, Memory] = field(default_factory=dict)

    @staticmethod
    def relevant(event: dict[str, Any]) -> bool:
        """Whether any detector reads ``event``: logins, searches, viewings, movie starts.

        Pauses, seeks, stops and resumed plays change no rule and no feature (their device
        is already known from the play that started the movie), so the stream app skips them
        before touching state — and before decoding them (:func:`relevant_kind`).
        """
        return relevant_kind(event["event_type"], event.get("position_s"))

    def user_step(self, memory: Memory, event: dict[str, Any], ts: int, now_ms: int) -> list[Alert]:
        """One user's next event (any topic): binge, logins, and the model's score."""
        alerts = user_rules_step(memory.setdefault("rules", {}), event, ts, self.rules, now_ms)
        if self.model is None:
            return alerts
        score = self.model.process(memory.setdefault("model", {}), event, ts)
        if self.model.anomalous and ts >= memory.get("river_until", -1):
            memory["river_until"] = ts + self.rules.ms("cooldown")
            alerts.append(self._model_alert("river_anomaly", "user", event["user_id"], event,
                                            ts, score, now_ms))  # fmt: skip
        return alerts

    def _model_alert(
        self, detector: str, kind: Any, entity: str, event: dict[str, Any], ts: int,
        score: float, now_ms: int,
    ) -> Alert:  # fmt: skip
        assert self.model is not None
        evidence: dict[str, Any] = {
            "features": self.model.last_features,
            "event_type": event["event_type"],
            "bar": self.model.config.ip_alert_score if kind == "ip" else
            self.model.config.alert_score,
            "event_ids": [event["event_id"]],
        }  # fmt: skip
        if kind == "ip":
            evidence["ip"] = str(event.get("ip"))
            evidence["ip_normalised"] = entity
        return Alert(
            detector=detector,
            entity_kind=kind,
            entity_id=entity,
            user_ids=[event["user_id"]] if kind == "user" else [],
            score=round(score, 4),
            severity="medium",
            window_start_ms=ts,
            window_end_ms=ts,
            evidence=evidence,
            decisive_event_id=event["event_id"],
            event_time_ms=ts,
            detected_at_ms=now_ms,
        )

    def ip_step(self, memory: Memory, event: dict[str, Any], ts: int, now_ms: int,
                horizon_ms: int | None = None) -> list[Alert]:  # fmt: skip
        """One IP's next login attempt: credential stuffing (``horizon_ms``: see the rule) and
        the model's IP score (``river_ip_anomaly``)."""
        ip = normalise_ip(str(event["ip"]))
        alerts = ip_rules_step(memory, ip, event, ts, self.rules, now_ms, horizon_ms)
        if self.model is None:
            return alerts
        score = self.model.process_ip(memory.setdefault("model", {}), event, ts)
        if self.model.anomalous and ts >= memory.get("river_until", -1):
            memory["river_until"] = ts + self.rules.ms("cooldown")
            alerts.append(self._model_alert("river_ip_anomaly", "ip", ip, event, ts, score,
                                            now_ms))  # fmt: skip
        return alerts

    def step(self, event: dict[str, Any]) -> list[Alert]:
        if not self.relevant(event):
            return []
        ts = event_time_ms(event)
        now = int(self.clock() * 1000)
        alerts = self.user_step(self.users.setdefault(event["user_id"], {}), event, ts, now)
        if event["event_type"] == "login":
            ip = normalise_ip(str(event["ip"]))
            alerts += self.ip_step(self.ips.setdefault(ip, {}), event, ts, now)
        return alerts

    def run(self, events: Iterable[dict[str, Any]]) -> list[Alert]:
        """All alerts over ``events`` (in event-time order), in memory."""
        return [alert for event in events for alert in self.step(event)]
