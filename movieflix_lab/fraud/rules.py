"""The fraud rules: exact, windowed, one entity's memory at a time.

Each rule keeps a small JSON-compatible ``memory`` per entity (a user, or an IP) and is fed
that entity's events in order with :meth:`step`, which updates the memory in place and
returns the alerts the event completes. The stream app keeps the memories in Quix state
(RocksDB, changelogged: they survive restarts and move with their partition when instances
are added); a notebook keeps them in a plain ``dict`` (:class:`RuleEngine`). So both run the
same code.

Windows are *sliding* and exact: a rule keeps the timestamps of the window's events, so a
burst is caught wherever it falls, including across the edges of any tumbling grid.

One alert per entity per incident: after an alert, a rule stays quiet for that entity while
the incident goes on and for ``cooldown`` after its last qualifying event. The alert id is
derived from the incident's first event in the window, so a replay gives the same id.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from movieflix_lab.fraud.alerts import Alert

__all__ = [
    "COUNTRY_CENTROIDS",
    "RuleConfig",
    "RuleEngine",
    "event_time_ms",
    "ip_rules_step",
    "user_rules_step",
]

Memory = dict[str, Any]
Clock = Callable[[], float]

#: Approximate centroids (lat, lon) for the impossible-travel check; other countries skip it.
COUNTRY_CENTROIDS: dict[str, tuple[float, float]] = {
    "US": (39.8, -98.6),
    "CA": (56.1, -106.3),
    "MX": (23.6, -102.6),
    "BR": (-14.2, -51.9),
    "AR": (-38.4, -63.6),
    "GB": (54.0, -2.0),
    "IE": (53.4, -8.2),
    "FR": (46.2, 2.2),
    "DE": (51.2, 10.5),
    "NL": (52.1, 5.3),
    "BE": (50.5, 4.5),
    "ES": (40.5, -3.7),
    "PT": (39.4, -8.2),
    "IT": (41.9, 12.6),
    "CH": (46.8, 8.2),
    "AT": (47.5, 14.6),
    "SE": (60.1, 18.6),
    "NO": (60.5, 8.5),
    "DK": (56.3, 9.5),
    "FI": (61.9, 25.7),
    "PL": (51.9, 19.1),
    "UA": (48.4, 31.2),
    "RU": (61.5, 105.3),
    "TR": (39.0, 35.2),
    "IN": (20.6, 79.0),
    "CN": (35.9, 104.2),
    "JP": (36.2, 138.3),
    "KR": (35.9, 127.8),
    "SG": (1.35, 103.8),
    "ID": (-0.8, 113.9),
    "AU": (-25.3, 133.8),
    "ZA": (-30.6, 22.9),
    "NG": (9.1, 8.7),
    "EG": (26.8, 30.8),
}


@dataclass(frozen=True)
class RuleConfig:
    """Thresholds and windows; the defaults are the seed's numbers."""

    binge_movies: int = 100
    binge_window: timedelta = timedelta(minutes=5)
    stuffing_accounts: int = 50
    stuffing_window: timedelta = timedelta(minutes=10)
    failed_logins: int = 10
    failed_window: timedelta = timedelta(minutes=10)
    #: A successful login from a country and a device new to the user (who has logged in
    #: before) followed by this many plays or searches within ``novel_window``.
    novel_activity: int = 5
    novel_window: timedelta = timedelta(minutes=15)
    #: Faster than this between two successful logins' countries is impossible travel.
    travel_kmh: float = 1000.0
    #: Countries closer than this (centroids) are never impossible travel.
    travel_min_km: float = 500.0
    cooldown: timedelta = timedelta(minutes=30)

    def ms(self, name: str) -> int:
        value: timedelta = getattr(self, name)
        return int(value.total_seconds() * 1000)


def event_time_ms(event: dict[str, Any]) -> int:
    """An event record's event time in epoch milliseconds.

    >>> event_time_ms({"timestamp": "2026-01-01T00:00:01Z"})
    1767225601000
    """
    value = event["timestamp"]
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(datetime.fromisoformat(value).timestamp() * 1000)


def _km(a: str, b: str) -> float | None:
    if a not in COUNTRY_CENTROIDS or b not in COUNTRY_CENTROIDS:
        return None
    (lat1, lon1), (lat2, lon2) = COUNTRY_CENTROIDS[a], COUNTRY_CENTROIDS[b]
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(h))


def _slide(times: list[int], ts: int, window_ms: int) -> list[int]:
    """Insert ``ts`` (in order) and keep only the times within ``window_ms`` of the newest."""
    bisect.insort(times, ts)
    cut = bisect.bisect_left(times, times[-1] - window_ms + 1)
    return times[cut:]


def _cooling(memory: Memory, key: str, ts: int) -> bool:
    return ts < memory.get(key, -1)


def _severity(ratio: float) -> Any:
    return "critical" if ratio >= 2 else "high" if ratio >= 1.3 else "medium"


def _binge(
    memory: Memory, event: dict[str, Any], ts: int, cfg: RuleConfig, now: int
) -> list[Alert]:
    # A start: play at the beginning of a movie (a resume after a pause plays from its position).
    if event["event_type"] != "play" or event.get("position_s", 0) > 0:
        return []
    window = cfg.ms("binge_window")
    starts = _slide(memory.get("starts", []), ts, window)
    ids = ([*memory.get("start_ids", []), event["event_id"]])[-len(starts) :]
    memory["starts"], memory["start_ids"] = starts, ids
    if len(starts) < cfg.binge_movies:
        return []
    if _cooling(memory, "binge_until", ts):
        memory["binge_until"] = ts + cfg.ms("cooldown")
        return []
    memory["binge_until"] = ts + cfg.ms("cooldown")
    user = event["user_id"]
    return [
        Alert(
            detector="binge_bot",
            entity_kind="user",
            entity_id=user,
            user_ids=[user],
            score=len(starts) / cfg.binge_movies,
            severity=_severity(len(starts) / cfg.binge_movies),
            window_start_ms=starts[0],
            window_end_ms=starts[0] + window,
            evidence={
                "movies_started": len(starts),
                "window_s": window // 1000,
                "event_ids": ids[:3] + ids[-2:],
            },
            decisive_event_id=event["event_id"],
            event_time_ms=ts,
            detected_at_ms=now,
        )
    ]


def _logins(
    memory: Memory, event: dict[str, Any], ts: int, cfg: RuleConfig, now: int
) -> list[Alert]:
    alerts: list[Alert] = []
    user = event["user_id"]
    kind = event["event_type"]
    devices: list[str] = memory.setdefault("devices", [])
    novel: Memory | None = memory.get("novel")
    if novel and ts - novel["ts"] > cfg.ms("novel_window"):
        novel = memory["novel"] = None
    if kind == "login" and not event["success"]:
        failed = _slide(memory.get("failed", []), ts, cfg.ms("failed_window"))
        memory["failed"] = failed
        if len(failed) >= cfg.failed_logins:
            if not _cooling(memory, "failed_until", ts):
                alerts.append(
                    Alert(
                        detector="failed_login_burst",
                        entity_kind="user",
                        entity_id=user,
                        user_ids=[user],
                        score=len(failed) / cfg.failed_logins,
                        severity=_severity(len(failed) / cfg.failed_logins),
                        window_start_ms=failed[0],
                        window_end_ms=failed[0] + cfg.ms("failed_window"),
                        evidence={"failed_logins": len(failed), "ip": event.get("ip")},
                        decisive_event_id=event["event_id"],
                        event_time_ms=ts,
                        detected_at_ms=now,
                    )
                )
            memory["failed_until"] = ts + cfg.ms("cooldown")
    elif kind == "login":
        country, device = event["country"], event["device_id"]
        countries: list[str] = memory.setdefault("countries", [])
        last = memory.get("last_login")
        if last and last["country"] != country:
            km = _km(last["country"], country)
            hours = max(ts - last["ts"], 1) / 3_600_000
            if km is not None and km >= cfg.travel_min_km and km / hours > cfg.travel_kmh:
                if not _cooling(memory, "travel_until", ts):
                    alerts.append(
                        Alert(
                            detector="impossible_travel",
                            entity_kind="user",
                            entity_id=user,
                            user_ids=[user],
                            score=round(km / hours / cfg.travel_kmh, 3),
                            severity="high",
                            window_start_ms=last["ts"],
                            window_end_ms=ts,
                            evidence={
                                "from": last["country"],
                                "to": country,
                                "km": round(km),
                                "minutes": round((ts - last["ts"]) / 60_000, 1),
                                "event_ids": [last["event_id"], event["event_id"]],
                            },
                            decisive_event_id=event["event_id"],
                            event_time_ms=ts,
                            detected_at_ms=now,
                        )
                    )
                memory["travel_until"] = ts + cfg.ms("cooldown")
        if countries and country not in countries and device not in devices:
            memory["novel"] = {
                "ts": ts,
                "event_id": event["event_id"],
                "device": device,
                "country": country,
                "activity": 0,
            }
        memory["last_login"] = {"ts": ts, "country": country, "event_id": event["event_id"]}
        if country not in countries:
            countries.append(country)
            del countries[:-10]
    elif novel and kind in ("play", "search") and event.get("device_id") == novel["device"]:
        if event.get("position_s", 0) == 0:
            novel["activity"] += 1
        if novel["activity"] >= cfg.novel_activity and not _cooling(memory, "novel_until", ts):
            memory["novel_until"] = novel["ts"] + cfg.ms("cooldown")
            alerts.append(
                Alert(
                    detector="new_login_activity",
                    entity_kind="user",
                    entity_id=user,
                    user_ids=[user],
                    score=1.0,
                    severity="high",
                    window_start_ms=novel["ts"],
                    window_end_ms=novel["ts"] + cfg.ms("novel_window"),
                    evidence={
                        "country": novel["country"],
                        "device_id": novel["device"],
                        "known_countries": memory.get("countries", [])[:-1],
                        "activity": novel["activity"],
                        "event_ids": [novel["event_id"]],
                    },
                    decisive_event_id=novel["event_id"],
                    event_time_ms=novel["ts"],
                    trigger_event_id=event["event_id"],
                    detected_at_ms=now,
                )
            )
    device = event.get("device_id")
    if device and device not in devices:
        devices.append(device)
        del devices[:-20]
    return alerts


def user_rules_step(
    memory: Memory, event: dict[str, Any], ts: int, config: RuleConfig, now_ms: int
) -> list[Alert]:
    """Binge bots, abnormal logins, failed-login bursts: one user's next event."""
    binge = memory.setdefault("binge", {})
    logins = memory.setdefault("login", {})
    return _binge(binge, event, ts, config, now_ms) + _logins(logins, event, ts, config, now_ms)


def _densest_window(
    accounts: dict[str, list[Any]], ts: int, window: int
) -> tuple[int, list[tuple[str, int, str]]]:
    """The earliest window [s, s + window) holding ``ts`` with the most distinct accounts."""
    ordered = sorted((seen, user, eid) for user, (seen, eid) in accounts.items())
    times = [seen for seen, _, _ in ordered]
    best: tuple[int, int] = (0, ts)  # (count, start)
    for i in range(bisect.bisect_right(times, ts - window), bisect.bisect_right(times, ts)):
        count = bisect.bisect_left(times, times[i] + window) - i
        if count > best[0]:
            best = (count, times[i])
    start = best[1]
    inside = [(u, seen, eid) for seen, u, eid in ordered if start <= seen < start + window]
    return start, inside


def ip_rules_step(
    memory: Memory,
    ip: str,
    event: dict[str, Any],
    ts: int,
    config: RuleConfig,
    now_ms: int,
    horizon_ms: int | None = None,
) -> list[Alert]:
    """Credential stuffing: one IP's next login attempt (successful or not).

    The exact number of distinct accounts tried from ``ip`` in the densest window of
    ``stuffing_window`` that holds this attempt. An IP's attempts come from every partition
    of ``login-events`` through a repartition topic, so they may arrive out of event-time
    order: each account's latest attempt is kept for two windows behind ``horizon_ms`` (the
    event-time watermark over the source partitions, in a stream app; by default the newest
    attempt seen, which is the same for events in time order), and windows are placed
    around each attempt's own time, not the arrival order. Evicting behind the newest
    attempt *read* instead would drop accounts a slower partition still has attempts for.
    (So the alert is the same whatever the arrival order; its ``window_start`` — and with
    it the alert id — can differ by the order in which the app happened to read the partitions.)
    """
    if event["event_type"] != "login":
        return []
    window = config.ms("stuffing_window")
    accounts: dict[str, list[Any]] = memory.setdefault("accounts", {})
    previous = accounts.get(event["user_id"])
    if previous is None or previous[0] <= ts:
        accounts[event["user_id"]] = [ts, event["event_id"]]
    newest = max(memory.get("newest", ts), ts)
    memory["newest"] = newest
    horizon = newest if horizon_ms is None else horizon_ms
    for user in [u for u, (seen, _) in accounts.items() if seen <= horizon - 2 * window]:
        del accounts[user]
    if len(accounts) < config.stuffing_accounts:
        return []
    start, inside = _densest_window(accounts, ts, window)
    if len(inside) < config.stuffing_accounts:
        return []
    cooling = start < memory.get("until", -1)
    memory["until"] = max(memory.get("until", -1), inside[-1][1] + config.ms("cooldown"))
    if cooling:
        return []
    ratio = len(inside) / config.stuffing_accounts
    return [
        Alert(
            detector="credential_stuffing",
            entity_kind="ip",
            entity_id=ip,
            user_ids=[user for user, _, _ in inside],
            score=ratio,
            severity=_severity(ratio),
            window_start_ms=start,
            window_end_ms=start + window,
            evidence={
                "distinct_accounts": len(inside),
                "window_s": window // 1000,
                "event_ids": [eid for _, _, eid in inside[:5]],
            },
            decisive_event_id=event["event_id"],
            event_time_ms=ts,
            detected_at_ms=now_ms,
        )
    ]


@dataclass
class RuleEngine:
    """All rules over events in memory: for notebooks, tests and the batch check.

    >>> from movieflix_lab.simulate.traffic import SimulationConfig, Simulator
    >>> from movieflix_lab.events.codec import to_record
    >>> sim = Simulator(SimulationConfig(seed=3, users=200, minutes=90,
    ...                 incident_rates={"binge_bot": 2.0}))
    >>> alerts = RuleEngine().run(to_record(e) for e in sim.events())
    >>> sorted({a.entity_id for a in alerts if a.detector == "binge_bot"}) == sorted(
    ...     i.entity_id for i in sim.incidents if i.decisive_event_id)
    True
    """

    config: RuleConfig = field(default_factory=RuleConfig)
    clock: Clock = time.time
    users: dict[str, Memory] = field(default_factory=dict)
    ips: dict[str, Memory] = field(default_factory=dict)

    def step(self, event: dict[str, Any]) -> list[Alert]:
        ts = event_time_ms(event)
        now = int(self.clock() * 1000)
        alerts = user_rules_step(
            self.users.setdefault(event["user_id"], {}), event, ts, self.config, now
        )
        if event["event_type"] == "login":
            ip = str(event["ip"])
            alerts += ip_rules_step(self.ips.setdefault(ip, {}), ip, event, ts, self.config, now)
        return alerts

    def run(self, events: Iterable[dict[str, Any]]) -> list[Alert]:
        return [alert for event in events for alert in self.step(event)]
