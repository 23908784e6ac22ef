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

**The decisive event is exact in event time.** A count rule's alert is dated at the event that
crossed its threshold in event time — the 100th start inside 5 minutes, the 50th distinct
account inside the window, the 10th failure — found over the events kept, not the event whose
arrival completed the count. When a later-arriving event moves the crossing earlier (events of
one IP come from every partition of ``login-events``; a device may send late), the rule sends
the alert again with the same ``alert_id``, ``revision`` one higher and the earlier decisive
event: consumers keep the highest revision of each ``alert_id`` (the API and ``eval fraud``
do), so the alert's date is the same whatever the arrival order.

**IP addresses** are keyed in one normalised form, :func:`normalise_ip`: IPv6 compressed and in
lower case, an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) as its IPv4 address, so one source
cannot split its attempts over two spellings. Alerts carry both the normalised form and the
spellings as the records had them.
"""

from __future__ import annotations

import bisect
import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from movieflix_lab.fraud.alerts import Alert
from movieflix_lab.fraud.geo import Geography

__all__ = [
    "GEOGRAPHY",
    "RuleConfig",
    "RuleEngine",
    "event_time_ms",
    "ip_rules_step",
    "normalise_ip",
    "user_rules_step",
]

Memory = dict[str, Any]
Clock = Callable[[], float]

#: The countries impossible travel measures between (every ISO 3166-1 country; codes it
#: cannot place are counted in it and logged once).
GEOGRAPHY = Geography()


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
    #: Countries closer than this (their points: :mod:`movieflix_lab.fraud.geo`) are never
    #: impossible travel.
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


def normalise_ip(text: str) -> str:
    """The one spelling an IP address is keyed by (IPv6 compressed, IPv4-mapped as IPv4).

    >>> normalise_ip("2001:DB8:0:0:0:0:0:1"), normalise_ip("::ffff:192.0.2.1"), normalise_ip("x")
    ('2001:db8::1', '192.0.2.1', 'x')
    """
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _slide(times: list[Any], item: list[Any], window_ms: int) -> list[Any]:
    """Insert ``item`` (``[ts, ...]``, in time order) and keep only the items within
    ``window_ms`` of the newest."""
    bisect.insort(times, item)
    cut = bisect.bisect_left(times, [times[-1][0] - window_ms + 1])
    return times[cut:]


def _crossing(items: list[list[Any]], count: int, window_ms: int) -> int | None:
    """The index of the earliest item (in time order) that completes ``count`` items inside
    ``window_ms``: the event that crossed the threshold in event time."""
    for i in range(count - 1, len(items)):
        if items[i][0] - items[i - count + 1][0] < window_ms:
            return i
    return None


def _fire(
    memory: Memory, key: str, decisive: tuple[int, str], window_ms: int
) -> tuple[str, int] | None:
    """Whether a crossing at ``decisive`` (time, event id) alerts: ``("new", 0)`` for a new
    incident, ``(alert id, revision)`` when it moves the open alert's crossing earlier, None
    when it is the open incident's (cooling) or no earlier than its crossing."""
    ts = decisive[0]
    opened = memory.get(f"{key}_open")
    if opened and opened["ts"] - window_ms < ts < opened["ts"]:
        opened["ts"], opened["event_id"] = ts, decisive[1]
        opened["revision"] += 1
        return opened["alert_id"], opened["revision"]
    if _cooling(memory, f"{key}_until", ts):
        return None
    return "new", 0


def _opened(memory: Memory, key: str, alert: Alert) -> Alert:
    memory[f"{key}_open"] = {
        "alert_id": alert.alert_id,
        "ts": alert.event_time_ms,
        "event_id": alert.decisive_event_id,
        "revision": alert.revision,
    }
    return alert


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
    fired: tuple[str, int] = ("new", 0),
) -> Alert:
    """An alert on ``event``'s user (``ts``: its event time). The decisive event is
    ``event`` itself unless given as (event id, event time); then ``event`` triggered it.
    ``fired`` is :func:`_fire`'s answer: a new alert, or a revision of an open one."""
    user = event["user_id"]
    decisive_id, decisive_ms = decisive or (event["event_id"], ts)
    alert_id, revision = fired
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
        trigger_event_id=event["event_id"],
        detected_at_ms=now,
        revision=revision,
        alert_id="" if alert_id == "new" else alert_id,
    )


def _binge(
    memory: Memory, event: dict[str, Any], ts: int, cfg: RuleConfig, now: int
) -> list[Alert]:
    # A start: play at the beginning of a movie (a resume after a pause plays from its position).
    if event["event_type"] != "play" or event.get("position_s", 0) > 0:
        return []
    window = cfg.ms("binge_window")
    kept = [t if isinstance(t, list) else [t, ""] for t in memory.get("starts", [])]
    starts = _slide(kept, [ts, event["event_id"]], window)
    memory["starts"] = starts
    memory.pop("start_ids", None)  # kept apart before decisive events were exact
    if len(starts) < cfg.binge_movies:
        return []
    i = _crossing(starts, cfg.binge_movies, window)
    if i is None:
        return []
    first = i - cfg.binge_movies + 1
    decisive = (starts[i][1], starts[i][0])
    fired = _fire(memory, "binge", (starts[i][0], starts[i][1]), window)
    memory["binge_until"] = max(memory.get("binge_until", -1), ts + cfg.ms("cooldown"))
    if fired is None:
        return []
    ratio = len(starts) / cfg.binge_movies
    ids = [eid for _, eid in starts]
    evidence = {"movies_started": len(starts), "window_s": window // 1000,
                "event_ids": ids[:3] + ids[-2:]}  # fmt: skip
    span = (starts[first][0], starts[first][0] + window)
    alert = _user_alert("binge_bot", event, ts, score=ratio, severity=_severity(ratio),
                        window=span, evidence=evidence, now=now, decisive=decisive,
                        fired=fired)  # fmt: skip
    return [_opened(memory, "binge", alert)]


def _ips(event: dict[str, Any]) -> dict[str, Any]:
    sent = str(event.get("ip"))
    return {"ip": sent, "ip_normalised": normalise_ip(sent)}


def _failed_login_burst(
    memory: Memory, event: dict[str, Any], ts: int, cfg: RuleConfig, now: int
) -> list[Alert]:
    """``failed_logins`` failed logins of one user inside ``failed_window`` (the decisive
    event: the failure that made them ``failed_logins`` in event time)."""
    window = cfg.ms("failed_window")
    failed = _slide(
        [f if isinstance(f, list) else [f, ""] for f in memory.get("failed", [])],
        [ts, event["event_id"], normalise_ip(str(event.get("ip")))],
        window,
    )
    memory["failed"] = failed
    if len(failed) < cfg.failed_logins:
        return []
    i = _crossing(failed, cfg.failed_logins, window)
    if i is None:
        return []
    first = i - cfg.failed_logins + 1
    fired = _fire(memory, "failed", (failed[i][0], failed[i][1]), window)
    memory["failed_until"] = max(memory.get("failed_until", -1), ts + cfg.ms("cooldown"))
    if fired is None:
        return []
    ratio = len(failed) / cfg.failed_logins
    sources = sorted({f[2] for f in failed if len(f) > 2})
    alert = _user_alert("failed_login_burst", event, ts, score=ratio, severity=_severity(ratio),
                        window=(failed[first][0], failed[first][0] + window),
                        evidence={"failed_logins": len(failed), **_ips(event),
                                  "source_ips": sources[:5]},
                        now=now, decisive=(failed[i][1], failed[i][0]),
                        fired=fired)  # fmt: skip
    return [_opened(memory, "failed", alert)]


def _impossible_travel(
    memory: Memory, event: dict[str, Any], ts: int, cfg: RuleConfig, now: int
) -> list[Alert]:
    """Two successful logins of one user from countries too far apart for the time between."""
    last, country = memory.get("last_login"), event["country"]
    if not last or last["country"] == country:
        return []
    km = GEOGRAPHY.km(last["country"], country)
    hours = max(ts - last["ts"], 1) / 3_600_000
    if km is None or km < cfg.travel_min_km or km / hours <= cfg.travel_kmh:
        return []
    cooling = _cooling(memory, "travel_until", ts)
    memory["travel_until"] = ts + cfg.ms("cooldown")
    if cooling:
        return []
    evidence = {"from": last["country"], "to": country, "km": round(km),
                "minutes": round((ts - last["ts"]) / 60_000, 1), **_ips(event),
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
    watch a new country and device opened.

    A failed login says nothing about the account holder (anyone can try a password), so
    its device does not become one of the user's devices."""
    devices: list[str] = memory.setdefault("devices", [])
    novel: Memory | None = memory.get("novel")
    if novel and ts - novel["ts"] > cfg.ms("novel_window"):
        memory["novel"] = None
    alerts: list[Alert] = []
    if event["event_type"] == "login" and not event["success"]:
        return _failed_login_burst(memory, event, ts, cfg, now)
    if event["event_type"] == "login":
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


#: Attempts kept per account and IP (the stuffing rule needs the earliest in a window; an
#: account retried more often than this keeps its latest).
ATTEMPTS_PER_ACCOUNT = 4


def _stuffing_crossing(
    attempts: list[list[Any]], count: int, window: int
) -> tuple[int, int] | None:
    """(first, last): the earliest window of attempts, in event time, whose last attempt
    completes ``count`` distinct accounts inside ``window``."""
    inside: dict[str, int] = {}
    left = 0
    for right, (ts, user, _eid, _ok) in enumerate(attempts):
        inside[user] = inside.get(user, 0) + 1
        while attempts[left][0] <= ts - window:
            gone = attempts[left][1]
            inside[gone] -= 1
            if not inside[gone]:
                del inside[gone]
            left += 1
        if len(inside) >= count:
            return left, right
    return None


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

    ``stuffing_accounts`` distinct accounts tried from ``ip`` (normalised,
    :func:`normalise_ip`) inside ``stuffing_window``; the decisive event is the attempt that
    made them so many in event time. An IP's attempts come from every partition of
    ``login-events`` through a repartition topic, so they may arrive out of event-time order:
    attempts are kept for two windows behind ``horizon_ms`` (the event-time watermark over
    the source partitions, in a stream app; by default the newest attempt seen, which is the
    same for events in time order), and a later arrival that moves the crossing earlier
    sends the alert again as a revision (see the module's docstring).

    The accounts tried are evidence: those that only failed are the attack's *targets*
    (counted, the first few named), those it logged into are its ``user_ids`` (compromised).
    """
    if event["event_type"] != "login":
        return []
    window = config.ms("stuffing_window")
    memory.pop("accounts", None)  # the shape before decisive events were exact
    attempts: list[list[Any]] = memory.setdefault("attempts", [])
    user = event["user_id"]
    bisect.insort(attempts, [ts, user, event["event_id"], bool(event.get("success"))])
    mine = [a for a in attempts if a[1] == user]
    if len(mine) > ATTEMPTS_PER_ACCOUNT:
        attempts.remove(mine[0])
    spellings: list[str] = memory.setdefault("spellings", [])
    sent = str(event.get("ip"))
    if sent not in spellings and len(spellings) < 5:
        spellings.append(sent)
    newest = max(memory.get("newest", ts), ts)
    memory["newest"] = newest
    horizon = newest if horizon_ms is None else horizon_ms
    cut = bisect.bisect_right(attempts, [horizon - 2 * window, "\uffff"])
    if cut:
        del attempts[:cut]
    if len({a[1] for a in attempts}) < config.stuffing_accounts:
        return []
    found = _stuffing_crossing(attempts, config.stuffing_accounts, window)
    if found is None:
        return []
    first, last = found
    start, decisive = attempts[first][0], attempts[last]
    later = [a for a in attempts[last + 1 :] if a[0] < start + window]
    fired = _fire(memory, "stuffing", (decisive[0], decisive[2]), window)
    memory["stuffing_until"] = max(memory.get("stuffing_until", -1),
                                   attempts[-1][0] + config.ms("cooldown"))  # fmt: skip
    memory.pop("until", None)
    if fired is None:
        return []
    tried: dict[str, bool] = {}
    for _, account, _, ok in attempts[first : last + 1] + later:
        tried[account] = tried.get(account, False) or ok
    targets = [account for account, ok in tried.items() if not ok]
    compromised = [account for account, ok in tried.items() if ok]
    ratio = len(tried) / config.stuffing_accounts
    alert_id, revision = fired
    alert = Alert(
        detector="credential_stuffing",
        entity_kind="ip",
        entity_id=ip,
        user_ids=compromised,
        score=ratio,
        severity=_severity(ratio),
        window_start_ms=start,
        window_end_ms=start + window,
        evidence={
            "distinct_accounts": len(tried),
            "window_s": window // 1000,
            "ip": sent,
            "ip_normalised": ip,
            "ip_spellings": list(spellings),
            "targets": len(targets),
            "target_ids": targets[:5],
            "compromised": len(compromised),
            "event_ids": [a[2] for a in attempts[first : first + 3]] + [decisive[2]],
        },
        decisive_event_id=decisive[2],
        event_time_ms=decisive[0],
        trigger_event_id=event["event_id"],
        detected_at_ms=now_ms,
        revision=revision,
        alert_id="" if alert_id == "new" else alert_id,
    )
    return [_opened(memory, "stuffing", alert)]


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
            ip = normalise_ip(str(event["ip"]))
            alerts += ip_rules_step(self.ips.setdefault(ip, {}), ip, event, ts, self.config, now)
        return alerts

    def run(self, events: Iterable[dict[str, Any]]) -> list[Alert]:
        return [alert for event in events for alert in self.step(event)]
