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


def _user_alert(
    detector: str,
    event: dict[str, Any],
    ts: int,
    *,
    score: float,
    severity: Any,
    window: tuple[int, int],
    evidence: dict[str, Any],
    now: int,
    decisive: tuple[str, int] | None = None,
) -> Alert:
    """An alert on ``event``'s user (``ts``: its event time). The decisive event is
    ``event`` itself unless given as (event id, event time); then ``event`` triggered it."""
    user = event["user_id"]
    decisive_id, decisive_ms = decisive or (event["event_id"], ts)
    return Alert(
        detector=detector,
        entity_kind="user",
        entity_id=user,
        user_ids=[user],
        score=score,
        severity=severity,
        window_start_ms=window[0],
        window_end_ms=window[1],
        evidence=evidence,
        decisive_event_id=decisive_id,
        event_time_ms=decisive_ms,
        trigger_event_id=event["event_id"] if decisive else "",
        detected_at_ms=now,
    )


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
    ratio = len(starts) / cfg.binge_movies
    evidence = {"movies_started": len(starts), "window_s": window // 1000,
                "event_ids": ids[:3] + ids[-2:]}  # fmt: skip
    span = (starts[0], starts[0] + window)
    return [
        _user_alert("binge_bot", event, ts, score=ratio, severity=_severity(ratio), window=span,
                    evidence=evidence, now=now)
    ]  # fmt: skip


def _failed_login_burst(
    memory: Memory, event: dict[str, Any], ts: int, cfg: RuleConfig, now: int
) -> list[Alert]:
    """``failed_logins`` failed logins of one user inside ``failed_window``."""
    window = cfg.ms("failed_window")
    failed = _slide(memory.get("failed", []), ts, window)
    memory["failed"] = failed
    if len(failed) < cfg.failed_logins:
        return []
    cooling = _cooling(memory, "failed_until", ts)
    memory["failed_until"] = ts + cfg.ms("cooldown")
    if cooling:
        return []
    ratio = len(failed) / cfg.failed_logins
    return [_user_alert("failed_login_burst", event, ts, score=ratio, severity=_severity(ratio),
                        window=(failed[0], failed[0] + window),
                        evidence={"failed_logins": len(failed), "ip": event.get("ip")},
                        now=now)]  # fmt: skip


def _impossible_travel(
    memory: Memory, event: dict[str, Any], ts: int, cfg: RuleConfig, now: int
) -> list[Alert]:
    """Two successful logins of one user from countries too far apart for the time between."""
    last, country = memory.get("last_login"), event["country"]
    if not last or last["country"] == country:
        return []
    km = _km(last["country"], country)
    hours = max(ts - last["ts"], 1) / 3_600_000
    if km is None or km < cfg.travel_min_km or km / hours <= cfg.travel_kmh:
        return []
    cooling = _cooling(memory, "travel_until", ts)
    memory["travel_until"] = ts + cfg.ms("cooldown")
    if cooling:
        return []
    evidence = {"from": last["country"], "to": country, "km": round(km),
                "minutes": round((ts - last["ts"]) / 60_000, 1),
                "event_ids": [last["event_id"], event["event_id"]]}  # fmt: skip
    score = round(km / hours / cfg.travel_kmh, 3)
    return [
        _user_alert("impossible_travel", event, ts, score=score, severity="high",
                    window=(last["ts"], ts), evidence=evidence, now=now)
    ]  # fmt: skip


def _remember_login(memory: Memory, event: dict[str, Any], ts: int, devices: list[str]) -> None:
    """Note a successful login: a country and device both new to the user open a watch for
    activity on that device (``new_login_activity``)."""
    country, device = event["country"], event["device_id"]
    countries: list[str] = memory.setdefault("countries", [])
    if countries and country not in countries and device not in devices:
        memory["novel"] = {"ts": ts, "event_id": event["event_id"], "device": device,
                           "country": country, "activity": 0}  # fmt: skip
    memory["last_login"] = {"ts": ts, "country": country, "event_id": event["event_id"]}
    if country not in countries:
        countries.append(country)
        del countries[:-10]


def _new_login_activity(
    memory: Memory, event: dict[str, Any], ts: int, cfg: RuleConfig, now: int
) -> list[Alert]:
    """``novel_activity`` starts or searches on the device of a login from a new country
    and device (the decisive event is that login)."""
    novel = memory.get("novel")
    if not novel or event["event_type"] not in ("play", "search"):
        return []
    if event.get("device_id") != novel["device"]:
        return []
    if event.get("position_s", 0) == 0:
        novel["activity"] += 1
    if novel["activity"] < cfg.novel_activity or _cooling(memory, "novel_until", ts):
        return []
    memory["novel_until"] = novel["ts"] + cfg.ms("cooldown")
    evidence = {"country": novel["country"], "device_id": novel["device"],
                "known_countries": memory.get("countries", [])[:-1],
                "activity": novel["activity"], "event_ids": [novel["event_id"]]}  # fmt: skip
    return [_user_alert("new_login_activity", event, ts, score=1.0, severity="high",
                        window=(novel["ts"], novel["ts"] + cfg.ms("novel_window")),
                        evidence=evidence, now=now,
                        decisive=(novel["event_id"], novel["ts"]))]  # fmt: skip


def _logins(
    memory: Memory, event: dict[str, Any], ts: int, cfg: RuleConfig, now: int
) -> list[Alert]:
    """The login detectors, one step each: a failed login feeds the failed-login burst; a
    successful one impossible travel, then the user's login memory; activity feeds the
    watch a new country and device opened."""
    devices: list[str] = memory.setdefault("devices", [])
    novel: Memory | None = memory.get("novel")
    if novel and ts - novel["ts"] > cfg.ms("novel_window"):
        memory["novel"] = None
    alerts: list[Alert] = []
    if event["event_type"] == "login" and not event["success"]:
        alerts = _failed_login_burst(memory, event, ts, cfg, now)
    elif event["event_type"] == "login":
        alerts = _impossible_travel(memory, event, ts, cfg, now)
        _remember_login(memory, event, ts, devices)
    else:
        alerts = _new_login_activity(memory, event, ts, cfg, now)
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
