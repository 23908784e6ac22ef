"""The fraud app: rules and the River model over every user topic, alerts to ``fraud-signals``.

One consumer group reads ``user-interactions``, ``login-events``, ``search-events`` and
``watch-history``; Quix aligns the four by event time and they share one state per user
(``watch-history``'s key is ``user:movie``, so its key deserializer keeps the user part:
the record already sits in its user's partition). Each event runs through
:class:`~movieflix_lab.fraud.detector.FraudDetector` with that user's memory from Quix state
(RocksDB with a changelog topic: it survives restarts, and moves with its partition when
instances are added). Logins are also re-keyed by IP (a repartition topic) for the
credential-stuffing rule, with one memory per IP; its memory horizon is the IP partition's
event-time watermark over the login partitions (:mod:`movieflix_lab.streams.watermarks`),
so a catch-up that reads one partition far ahead of another forgets nothing still needed.

The River model is one object per instance, checkpointed to ``fraud_model_dir`` every
``checkpoint_every`` events and when the app stops, and reloaded at start. With several
instances each learns from its own partitions and checkpoints to its own sub-folder.

Alerts are keyed by user id (IP for IP rules) and carry a stable ``alert_id``; cool-downs
live in state, so a restart does not re-alert an incident already alerted on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Deserializer, SerializationContext
from quixstreams.state import State

from movieflix_lab.config import Settings
from movieflix_lab.events.avro import is_avro
from movieflix_lab.events.codec import decode
from movieflix_lab.events.fast import event_kind, fast_valid
from movieflix_lab.fraud.alerts import Alert
from movieflix_lab.fraud.detector import FraudDetector, relevant_kind
from movieflix_lab.fraud.model import ModelConfig, OnlineFraudModel
from movieflix_lab.fraud.rules import RuleConfig, normalise_ip
from movieflix_lab.kafka.catalog import (
    FRAUD_SIGNALS,
    LOGIN_EVENTS,
    SEARCH_EVENTS,
    USER_INTERACTIONS,
    WATCH_HISTORY,
)
from movieflix_lab.kafka.serde import EventDeserializer
from movieflix_lab.streams.regroup import Replays, regroup
from movieflix_lab.streams.watermarks import SourceClock, WatermarkClock

__all__ = ["FRAUD_INPUTS", "FraudApp", "FraudOptions", "UserKey", "build", "options_from"]

logger = logging.getLogger(__name__)

FRAUD_INPUTS = (USER_INTERACTIONS.name, LOGIN_EVENTS.name, SEARCH_EVENTS.name, WATCH_HISTORY.name)
#: The IP partitions' watermark moves in steps of this much event time.
WATERMARK_TICK_MS = 60_000
#: Per-user and per-IP memories of entities idle this long are dropped.
STATE_TTL = timedelta(days=7)
#: The state key of an entity's memory (its rules' and model's JSON, orjson bytes). A key
#: given as bytes is used as it is; a string would be JSON-dumped at every access. These
#: are the bytes ``"memory"`` always had, so state written before reads on.
MEMORY = b'"memory"'


@dataclass(frozen=True)
class FraudOptions:
    rules: RuleConfig = field(default_factory=RuleConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    #: None: no checkpoints (a model that starts fresh every run).
    model_dir: Path | None = None
    checkpoint_every: int = 50_000
    #: Written into every alert (``source``): the consumer group that raised it.
    source: str = ""


def model_dir(settings: Settings, instance: str = "0") -> Path:
    """Where instance ``instance`` of the fraud app checkpoints its River model."""
    folder = settings.fraud_model_path
    return folder if instance == "0" else folder / instance


def options_from(settings: Settings, instance: str = "0", source: str = "") -> FraudOptions:
    """The fraud options from ``settings`` (``MOVIEFLIX_FRAUD_*``)."""
    rules = RuleConfig(
        binge_movies=settings.fraud_binge_movies,
        binge_window=timedelta(seconds=settings.fraud_binge_window_s),
        stuffing_accounts=settings.fraud_stuffing_accounts,
        stuffing_window=timedelta(seconds=settings.fraud_stuffing_window_s),
        failed_logins=settings.fraud_failed_logins,
        failed_window=timedelta(seconds=settings.fraud_failed_window_s),
        cooldown=timedelta(seconds=settings.fraud_cooldown_s),
    )
    model = ModelConfig()
    if settings.fraud_alert_score is not None:
        model = replace(model, alert_score=settings.fraud_alert_score)
    if settings.fraud_ip_alert_score is not None:
        model = replace(model, ip_alert_score=settings.fraud_ip_alert_score)
    return FraudOptions(
        rules=rules,
        model=model,
        model_dir=model_dir(settings, instance),
        source=source,
    )


#: What :class:`FraudEvents` gives for an event no detector reads (never decoded).
SKIPPED: dict[str, Any] = {"event_type": "skipped"}


class FraudEvents(EventDeserializer):
    """The fraud app's values: events no detector reads (pauses, seeks, stops, resumed
    plays, ratings) are recognised from their type and validated, but never made into
    records nor read further; the others are decoded as every app decodes them.

    An invalid event goes to ``dead-letters`` either way: the fraud app is the only one that
    reads ``user-interactions``, so dropping what it skips unvalidated would lose it.
    """

    def __call__(self, value: bytes, ctx: SerializationContext) -> dict[str, Any]:
        if is_avro(value):  # decoded (so validated) in full, then skipped if no detector reads it
            record = super().__call__(value, ctx)
            return (
                record if relevant_kind(record["event_type"], record.get("position_s")) else SKIPPED
            )
        kind = event_kind(value)
        skip = kind is not None and not relevant_kind(*kind)
        if skip and (fast_valid(value) or decode(value)):  # decode raises on an invalid one
            return SKIPPED
        return super().__call__(value, ctx)


class UserKey(Deserializer):
    """A record key → the user id (``watch-history``'s ``user:movie`` keeps the user part)."""

    def __call__(self, value: bytes, ctx: SerializationContext) -> str:
        return value.decode().split(":", 1)[0]


@dataclass
class FraudApp:
    """The detector inside a running app, with its model checkpointing."""

    detector: FraudDetector
    options: FraudOptions
    clock: Callable[[], float] = time.time
    processed: int = 0
    #: The IP partition's event-time watermark (the stuffing rule's memory horizon).
    watermark: WatermarkClock = field(
        default_factory=lambda: WatermarkClock(grace_ms=0, pane_ms=WATERMARK_TICK_MS)
    )

    def _checkpoint(self) -> None:
        self.processed += 1
        if self.options.model_dir and self.processed % self.options.checkpoint_every == 0:
            self.save()

    def save(self) -> None:
        if self.options.model_dir and self.detector.model is not None:
            self.detector.model.save(self.options.model_dir)

    def _records(self, alerts: list[Alert]) -> list[dict[str, Any]]:
        return [{**alert.as_record(), "source": self.options.source} for alert in alerts]

    def on_user_event(
        self, value: dict[str, Any], key: str, timestamp: int, headers: Any, state: State
    ) -> list[dict[str, Any]]:
        if not self.detector.relevant(value):  # SKIPPED stopped at the filter before
            return []
        raw = state.get_bytes(MEMORY)
        memory = orjson.loads(raw) if raw is not None else {}
        alerts = self.detector.user_step(memory, value, timestamp, int(self.clock() * 1000))
        state.set_bytes(MEMORY, orjson.dumps(memory), ttl=STATE_TTL)
        self._checkpoint()
        return self._records(alerts)

    def on_ip_login(
        self, value: dict[str, Any], key: str, timestamp: int, headers: Any, state: State
    ) -> list[dict[str, Any]]:
        if self.watermark.observe(value, timestamp, headers, state).marker:
            return []
        # Until every login partition has been heard of the watermark is NEVER, and the
        # memory forgets nothing (the newest attempt read is no horizon: a partition not
        # read yet may hold attempts older than it).
        horizon = self.watermark.closed(state)
        raw = state.get_bytes(MEMORY)
        memory = orjson.loads(raw) if raw is not None else {}
        alerts = self.detector.ip_step(memory, value, timestamp, int(self.clock() * 1000),
                                       horizon)  # fmt: skip
        state.set_bytes(MEMORY, orjson.dumps(memory), ttl=STATE_TTL)
        return self._records(alerts)


def build(
    app: Application, options: FraudOptions | None = None, *, replays: Replays | None = None
) -> FraudApp:
    """Add the fraud pipeline to ``app``; returns the running detector (save it at the end)."""
    options = options or FraudOptions()
    model = (
        OnlineFraudModel.load_or_new(options.model_dir, options.model)
        if options.model_dir
        else OnlineFraudModel(options.model)
    )
    fraud = FraudApp(FraudDetector(rules=options.rules, model=model), options)
    frames: dict[str, StreamingDataFrame] = {
        name: app.dataframe(
            app.topic(name, key_deserializer=UserKey(), value_deserializer=FraudEvents())
        )
        for name in FRAUD_INPUTS
    }
    events = frames[FRAUD_INPUTS[0]]
    for name in FRAUD_INPUTS[1:]:
        events = events.concat(frames[name])
    signals = app.topic(FRAUD_SIGNALS.name, key_serializer="str", value_serializer="json")

    def entity(alert: dict[str, Any]) -> str:
        return str(alert["entity_id"])

    # What no detector reads stops here, before its user's state is opened.
    events = events.filter(lambda value: value is not SKIPPED)
    user_alerts = events.apply(fraud.on_user_event, stateful=True, metadata=True, expand=True)
    user_alerts.to_topic(signals, key=entity)

    by_ip = regroup(
        frames[LOGIN_EVENTS.name],
        lambda event: normalise_ip(str(event["ip"])),
        name="by-ip",
        exactly_once=app.config.exactly_once,
        replays=replays,
        ttl=STATE_TTL,
        app=app,
        clock=SourceClock(tick_ms=WATERMARK_TICK_MS),
    )
    ip_alerts = by_ip.apply(fraud.on_ip_login, stateful=True, metadata=True, expand=True)
    ip_alerts.to_topic(signals, key=entity)
    return fraud
