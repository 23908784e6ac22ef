"""MovieFlix traffic as a stream: viewing sessions, searches, logins, and labelled fraud.

A discrete-event simulation. Every user and every fraud incident is a generator that yields
its own events in time order; a heap merges them into one stream ordered by event time. The
heap holds one pending event per actor, so memory stays flat however long the run.

Deterministic for a seed: each actor draws from its own ``random.Random`` seeded from the
run's seed and the actor's name, and ties in time are broken by a counter.

Injected incidents (labelled in :attr:`Simulator.incidents`, never in the events):

``binge_bot`` (fraud)
    a scripted account starting 110-160 movies within 2.5-4.7 minutes.
``credential_stuffing`` (fraud)
    one IP trying 55-90 distinct accounts within 2-8 minutes, mostly failing.
``account_takeover`` (fraud)
    a login from a country, device and IP new to a user with a history (viewings and a
    login), followed within minutes by a burst of searches and plays in genres the user
    never watches.
``quiet_takeover`` (fraud, for the model)
    a login from the victim's *own* country on a device new to them, then 6-10 viewings at a
    human pace in genres the victim never watches: no rule can see it (no new country, no
    burst).
``account_sharing`` (fraud, for the model)
    a resold account: 3-4 new devices, each after a successful login from the victim's own
    country, watching at a human pace at the same time for one to two hours.
``slow_stuffing`` (fraud, for the model)
    one IP trying 60-120 distinct accounts spread over 3-6 hours (never 50 in 10 minutes),
    mostly failing.
``scraper`` (fraud, for the model)
    an account that searches 150-300 times in 2-3 hours and plays almost nothing.
``human_binger`` (hard negative)
    a real user watching 12-16 episodes of a series in about an hour.
``shared_ip`` (hard negative)
    an office or household IP where 10-30 colleagues log in within 10-20 minutes.
``new_device`` (hard negative)
    a user's new TV: a login from their home, then viewings to their own taste.

Each incident names its ``suspect_ids``: the accounts an alert on a user may rightly name (for
credential stuffing only the accounts it got into; the others were its targets, not suspects).
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from movieflix_lab.events.models import (
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
from movieflix_lab.simulate.world import (
    COUNTRIES,
    DEVICE_KINDS,
    GENRES,
    Movie,
    User,
    World,
    build_world,
)

__all__ = [
    "DEFAULT_INCIDENT_RATES",
    "FRAUD_SCENARIOS",
    "IP_SCENARIOS",
    "MODEL_SCENARIOS",
    "RULE_SCENARIOS",
    "Incident",
    "SimulationConfig",
    "Simulator",
    "last_evening",
]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

#: The scenarios the rules are meant for, and those only the model can find (by design).
RULE_SCENARIOS = ("binge_bot", "credential_stuffing", "account_takeover")
MODEL_SCENARIOS = ("quiet_takeover", "account_sharing", "slow_stuffing", "scraper")
FRAUD_SCENARIOS = RULE_SCENARIOS + MODEL_SCENARIOS
HARD_NEGATIVES = ("human_binger", "shared_ip", "new_device")
#: The scenarios about a user's own habits, which start only after ``HISTORY_MS`` of the run
#: (so their victim has a history to depart from).
HISTORY_SCENARIOS = ("account_takeover", "quiet_takeover", "new_device")
HISTORY_MS = 60 * 60_000
#: The scenarios whose entity is an IP address (the others': a user).
IP_SCENARIOS = ("credential_stuffing", "slow_stuffing", "shared_ip")

#: Event types a device may send late (windowed by the analytics app; fraud labels stay exact).
LATE_TYPES = frozenset({"watch", "search"})
#: Incidents per simulated hour, per scenario.
DEFAULT_INCIDENT_RATES: Mapping[str, float] = MappingProxyType(
    {
        "binge_bot": 1.0,
        "credential_stuffing": 1.0,
        "account_takeover": 1.0,
        "quiet_takeover": 0.5,
        "account_sharing": 0.5,
        "slow_stuffing": 0.5,
        "scraper": 0.5,
        "human_binger": 2.0,
        "shared_ip": 2.0,
        "new_device": 1.0,
    }
)

#: Relative viewing activity per hour of the day (UTC): quiet nights, busy evenings.
DAILY_RHYTHM = (
    0.30, 0.20, 0.15, 0.10, 0.10, 0.15, 0.25, 0.35, 0.40, 0.40, 0.45, 0.50,
    0.55, 0.55, 0.50, 0.55, 0.65, 0.75, 0.90, 1.00, 1.00, 0.90, 0.70, 0.50,
)  # fmt: skip
_MEAN_RHYTHM = sum(DAILY_RHYTHM) / len(DAILY_RHYTHM)

_QUERY_WORDS = ("new", "best", "top", "classic", "4k", "season", "movie", "series", "award")


def last_evening(now: datetime | None = None) -> datetime:
    """The default start of a simulation: the last 18:00 UTC at least a day ago.

    Recent, because Kafka deletes by record time: events dated months ago, written to a
    topic that keeps 7 days, go at the broker's next retention check (every 5 minutes),
    under a running consumer's feet. And in the past, because the broker refuses records
    more than an hour ahead of its clock: a day of simulated traffic fits.

    >>> last_evening(datetime(2026, 11, 24, 3, 0, tzinfo=UTC)).isoformat()
    '2026-11-22T18:00:00+00:00'
    >>> last_evening(datetime(2026, 11, 24, 19, 5, tzinfo=UTC)).isoformat()
    '2026-11-23T18:00:00+00:00'
    """
    day_ago = (now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=1)
    evening = day_ago.replace(hour=18, minute=0, second=0, microsecond=0)
    return evening if evening <= day_ago else evening - timedelta(days=1)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``minutes`` bounds simulated time, ``events`` the event count."""

    seed: int = 42
    users: int = 1000
    movies: int = 2000
    minutes: float | None = 60.0
    events: int | None = None
    #: An evening (the busiest hours), so short runs see realistic traffic; by default
    #: :func:`last_evening`. Pin it to replay the same events on another day.
    start: datetime = field(default_factory=lambda: last_evening())
    incident_rates: Mapping[str, float] = field(default_factory=lambda: DEFAULT_INCIDENT_RATES)
    #: Scales every user's sessions per day (denser traffic without more users).
    activity: float = 1.0
    taste_concentration: float = 0.15
    #: Devices that flush an offline buffer: this share of viewings and searches is sent
    #: ``late_by`` after it happened (its event time unchanged), labelled in ``late_event_ids``.
    late_share: float = 0.0
    late_by: timedelta = timedelta(minutes=20)

    def __post_init__(self) -> None:
        if self.minutes is None and self.events is None:
            raise ValueError("give minutes or events (or both)")
        unknown = set(self.incident_rates) - set(FRAUD_SCENARIOS + HARD_NEGATIVES)
        if unknown:
            known = ", ".join(FRAUD_SCENARIOS + HARD_NEGATIVES)
            raise ValueError(f"unknown incident scenario(s) {sorted(unknown)}; known: {known}")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        if not 0 <= self.late_share <= 1:
            raise ValueError(f"late_share must be between 0 and 1 (got {self.late_share})")
        if self.late_by <= timedelta(0):
            raise ValueError(f"late_by must be positive (got {self.late_by})")

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "users": self.users,
            "movies": self.movies,
            "minutes": self.minutes,
            "events": self.events,
            "start": self.start.isoformat(),
            "incident_rates": dict(self.incident_rates),
            "activity": self.activity,
            "taste_concentration": self.taste_concentration,
            "late_share": self.late_share,
            "late_by_s": self.late_by.total_seconds(),
        }


@dataclass
class Incident:
    """One injected incident: the label the fraud detectors are scored against."""

    incident_id: str
    scenario: str
    is_fraud: bool
    #: ``user`` or ``ip``: what a detector should alert on.
    entity_kind: str
    entity_id: str
    start: datetime
    end: datetime | None = None
    user_ids: list[str] = field(default_factory=list)
    #: The accounts an alert on a user may rightly name (None: every one of ``user_ids``).
    suspect_ids: list[str] | None = None
    #: The event from which a detector has the evidence the scenario defines
    #: (the 100th movie, the 50th account, the takeover login).
    decisive_event_id: str | None = None
    decisive_time: datetime | None = None
    event_count: int = 0
    #: Set by the actor when it generates the decisive event; confirmed once emitted.
    decisive_candidate: uuid.UUID | None = field(default=None, repr=False)

    def observe(self, event: EventBase) -> None:
        """Count an emitted event of this incident."""
        self.event_count += 1
        self.end = event.timestamp
        if event.event_id == self.decisive_candidate:
            self.decisive_event_id = str(event.event_id)
            self.decisive_time = event.timestamp

    def as_row(self) -> dict[str, Any]:
        row = dict(self.__dict__)
        del row["decisive_candidate"]
        return row


@dataclass(frozen=True)
class _Spawn:
    """Yielded by the incident scheduler at ``timestamp_ms``: start this incident's actor."""

    timestamp_ms: int
    incident: Incident
    actor: Iterator[EventBase]


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class _Ids:
    """Deterministic ids from an actor's random stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def event(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def session(self) -> str:
        return f"s{self.rng.getrandbits(48):012x}"


class Simulator:
    """Generates a deterministic, time-ordered stream of MovieFlix events.

    Examples
    --------
    >>> sim = Simulator(SimulationConfig(seed=7, users=50, movies=100, minutes=30))
    >>> events = list(sim.events())
    >>> [e.event_id for e in events[:3]] == [
    ...     e.event_id for e in list(Simulator(sim.config).events())[:3]]
    True
    >>> all(a.timestamp <= b.timestamp for a, b in zip(events, events[1:]))
    True
    """

    def __init__(self, config: SimulationConfig, world: World | None = None) -> None:
        self.config = config
        self.world = world or build_world(
            config.seed,
            users=config.users,
            movies=config.movies,
            taste_concentration=config.taste_concentration,
        )
        self.incidents: list[Incident] = []
        #: Events sent ``late_by`` after their event time (an offline buffer flushed).
        self.late_event_ids: set[uuid.UUID] = set()
        self.start_ms = int(config.start.timestamp() * 1000)
        self.end_ms = (
            self.start_ms + int(config.minutes * MINUTE_MS) if config.minutes is not None else None
        )
        self._episodes = [m for m in self.world.movies if m.episode]
        #: Viewings and successful logins per user so far in the run (a takeover picks a
        #: victim with a history to depart from).
        self._viewings: dict[str, int] = {}
        self._logins: dict[str, int] = {}

    def _rng(self, name: str) -> random.Random:
        return random.Random(f"{self.config.seed}/{name}")

    # --- the merged stream ---------------------------------------------------------
    def events(self) -> Iterator[EventBase]:
        """The event stream in the order devices send it: by event time, but for the late
        share (``late_share``), which arrives ``late_by`` after its time; ends at
        ``minutes`` or ``events``."""
        self.incidents = []
        self.late_event_ids = set()
        self._viewings, self._logins = {}, {}
        viewings, logins = self._viewings, self._logins
        heap: list[tuple[int, int, Any, Iterator[Any], Incident | None]] = []
        counter = itertools.count()
        late_rng = self._rng("late")
        late_ms = int(self.config.late_by.total_seconds() * 1000)
        #: (send time, order, event): late events waiting for their device to come online.
        buffered: list[tuple[int, int, EventBase]] = []

        def push(actor: Iterator[Any], owner: Incident | None = None) -> None:
            item = next(actor, None)
            if item is not None:
                heapq.heappush(heap, (item.timestamp_ms, next(counter), item, actor, owner))

        for user in self.world.users:
            push(self._user_life(user))
        push(self._incident_scheduler())

        emitted = 0
        limit = self.config.events
        while heap:
            ts, _, item, actor, owner = heapq.heappop(heap)
            if self.end_ms is not None and ts >= self.end_ms:
                break
            while buffered and buffered[0][0] <= ts:
                yield heapq.heappop(buffered)[2]
                emitted += 1
                if limit is not None and emitted >= limit:
                    return
            if isinstance(item, _Spawn):
                self.incidents.append(item.incident)
                push(item.actor, item.incident)
                push(actor)
                continue
            if owner is not None:
                owner.observe(item)
            elif item.event_type == "watch":
                viewings[item.user_id] = viewings.get(item.user_id, 0) + 1
            elif item.event_type == "login" and getattr(item, "success", False):
                logins[item.user_id] = logins.get(item.user_id, 0) + 1
            if (
                self.config.late_share
                and owner is None
                and item.event_type in LATE_TYPES
                and late_rng.random() < self.config.late_share
            ):
                self.late_event_ids.add(item.event_id)
                heapq.heappush(buffered, (ts + late_ms, next(counter), item))
            else:
                yield item
                emitted += 1
                if limit is not None and emitted >= limit:
                    return
            push(actor, owner)
        for _, _, item in sorted(buffered):  # the run ends: the buffers are flushed
            if limit is not None and emitted >= limit:
                return
            yield item
            emitted += 1

    # --- regular users ---------------------------------------------------------------
    def _user_life(self, user: User) -> Generator[EventBase, None, None]:
        rng = self._rng(f"user/{user.user_id}")
        ids = _Ids(rng)
        per_day = max(user.sessions_per_day * self.config.activity, 1e-6)
        max_rate_per_ms = per_day / _MEAN_RHYTHM / DAY_MS
        t = self.start_ms
        while True:
            # Thinning: candidate gaps at the peak rate, kept with the hour's rhythm.
            while True:
                t += int(rng.expovariate(max_rate_per_ms)) + 1
                if rng.random() < DAILY_RHYTHM[(t // HOUR_MS) % 24]:
                    break
            t = yield from self._session(user, t, rng, ids)

    def _session(
        self, user: User, t: int, rng: random.Random, ids: _Ids
    ) -> Generator[EventBase, None, int]:
        device = rng.choice(user.devices)
        session = ids.session()
        if rng.random() < 0.35:
            if rng.random() < 0.05:
                yield self._login(ids, user.user_id, t, user.home_ip, device, user.country, False)
                t += rng.randint(5_000, 40_000)
            yield self._login(ids, user.user_id, t, user.home_ip, device, user.country, True)
            t += rng.randint(2_000, 20_000)
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            genre = rng.choices(GENRES, weights=user.taste, k=1)[0]
            yield self._search(ids, user.user_id, t, device, rng, genre)
            t += rng.randint(5_000, 90_000)
        movies = 1
        while movies < 4 and rng.random() < 0.35:
            movies += 1
        for _ in range(movies):
            genre_index = rng.choices(range(len(GENRES)), weights=user.taste, k=1)[0]
            movie = self.world.pick_movie(rng, GENRES[genre_index])
            liked = user.taste[genre_index] * len(GENRES) >= 1.0
            completion = rng.uniform(0.55, 1.0) if liked else rng.uniform(0.03, 0.5)
            t = yield from self._viewing(
                user.user_id, movie, t, completion, session, device, rng, ids
            )
            if rng.random() < 0.2:
                stars = rng.choice((4, 5, 5)) if liked and completion > 0.8 else rng.randint(1, 4)
                yield RateEvent(
                    event_id=ids.event(),
                    user_id=user.user_id,
                    timestamp=_ts(t),
                    movie_id=movie.movie_id,
                    rating=stars,
                )
                t += rng.randint(2_000, 15_000)
            t += rng.randint(20_000, 300_000)
        return t

    def _viewing(
        self,
        user_id: str,
        movie: Movie,
        t: int,
        completion: float,
        session: str,
        device: str,
        rng: random.Random,
        ids: _Ids,
        interruptions: bool = True,
    ) -> Generator[EventBase, None, int]:
        """play → (pause → play) → (seek) → stop → watch record; returns the end time."""
        started = t
        watched = completion * movie.duration_s
        common = {"user_id": user_id, "movie_id": movie.movie_id, "session_id": session}
        yield PlayEvent(event_id=ids.event(), timestamp=_ts(t), device_id=device, **common)
        position = 0.0
        if interruptions and watched > 600 and rng.random() < 0.3:
            position = rng.uniform(60, watched - 60)
            t += int(position * 1000)
            yield PauseEvent(
                event_id=ids.event(), timestamp=_ts(t), device_id=device,
                position_s=round(position, 1), **common,
            )  # fmt: skip
            t += rng.randint(30_000, 600_000)
            yield PlayEvent(
                event_id=ids.event(), timestamp=_ts(t), device_id=device,
                position_s=round(position, 1), **common,
            )  # fmt: skip
        if interruptions and watched - position > 300 and rng.random() < 0.2:
            skip = rng.uniform(30, 240)
            t += int((watched - position) / 2 * 1000)
            at = position + (watched - position) / 2
            yield SeekEvent(
                event_id=ids.event(), timestamp=_ts(t), device_id=device,
                from_position_s=round(at, 1),
                to_position_s=round(min(at + skip, movie.duration_s), 1), **common,
            )  # fmt: skip
            position = at
        t += max(1000, int((watched - position) * 1000))
        yield StopEvent(
            event_id=ids.event(), timestamp=_ts(t), device_id=device,
            position_s=round(min(watched, movie.duration_s), 1), **common,
        )  # fmt: skip
        yield WatchRecord(
            event_id=ids.event(),
            timestamp=_ts(t),
            started_at=_ts(started),
            genre=movie.genre,
            device_id=device,
            seconds_watched=round(watched, 1),
            movie_duration_s=movie.duration_s,
            completion_ratio=round(min(1.0, watched / movie.duration_s), 4),
            **common,
        )
        return t

    @staticmethod
    def _login(
        ids: _Ids, user_id: str, t: int, ip: str, device: str, country: str, success: bool,
        reason: str = "bad_password",
    ) -> LoginEvent:  # fmt: skip
        return LoginEvent(
            event_id=ids.event(),
            user_id=user_id,
            timestamp=_ts(t),
            ip=ip,
            device_id=device,
            country=country,
            success=success,
            failure_reason=None if success else reason,
        )

    def _search(
        self, ids: _Ids, user_id: str, t: int, device: str, rng: random.Random, genre: str
    ) -> SearchEvent:
        words = [genre, rng.choice(_QUERY_WORDS)]
        if rng.random() < 0.4:
            words = [rng.choice(self.world.by_genre[genre][0] or self.world.movies).title.lower()]
        return SearchEvent(
            event_id=ids.event(),
            user_id=user_id,
            timestamp=_ts(t),
            query=" ".join(words),
            result_count=rng.randint(0, 60),
            device_id=device,
        )

    # --- incidents ---------------------------------------------------------------------
    def _incident_scheduler(self) -> Generator[_Spawn, None, None]:
        """Poisson arrivals of each scenario at its rate; spawns one actor per incident."""
        rng = self._rng("incidents")
        upcoming: list[tuple[int, str]] = []
        for scenario in sorted(self.config.incident_rates):
            rate = self.config.incident_rates[scenario]
            if rate > 0:
                upcoming.append((self.start_ms + int(rng.expovariate(rate / HOUR_MS)), scenario))
        heapq.heapify(upcoming)
        number = itertools.count(1)
        while upcoming:
            at, scenario = heapq.heappop(upcoming)
            rate = self.config.incident_rates[scenario]
            if scenario in HISTORY_SCENARIOS and at < self.start_ms + HISTORY_MS:
                # Its victim needs a history: no such incident in the run's first hours.
                heapq.heappush(upcoming, (at + 1 + int(rng.expovariate(rate / HOUR_MS)), scenario))
                continue
            incident = Incident(
                incident_id=f"{scenario}-{next(number):05d}",
                scenario=scenario,
                is_fraud=scenario in FRAUD_SCENARIOS,
                entity_kind="ip" if scenario in IP_SCENARIOS else "user",
                entity_id="",
                start=_ts(at),
            )
            yield _Spawn(at, incident, getattr(self, f"_{scenario}")(incident, at))
            heapq.heappush(upcoming, (at + 1 + int(rng.expovariate(rate / HOUR_MS)), scenario))

    @staticmethod
    def _decisive(incident: Incident, event: EventBase, decisive: bool) -> EventBase:
        """Mark ``event`` as the incident's decisive one (confirmed once emitted)."""
        if decisive:
            incident.decisive_candidate = event.event_id
        return event

    def _binge_bot(self, incident: Incident, t: int) -> Generator[EventBase, None, None]:
        rng = self._rng(incident.incident_id)
        ids = _Ids(rng)
        bot = f"ub{rng.getrandbits(32):08x}"
        device = f"web-{bot}"
        ip = f"45.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        incident.entity_id, incident.user_ids = bot, [bot]
        yield self._login(ids, bot, t, ip, device, "US", True)
        count = rng.randint(110, 160)
        span = rng.uniform(150_000, 280_000)
        session = ids.session()
        for i in range(count):
            at = t + 5_000 + int(i * span / count)
            movie = rng.choice(self.world.movies)
            common = {"user_id": bot, "movie_id": movie.movie_id, "session_id": session}
            play = PlayEvent(event_id=ids.event(), timestamp=_ts(at), device_id=device, **common)
            yield self._decisive(incident, play, i == 99)
            stop_at = at + int(span / count / 2)
            seconds = (stop_at - at) / 1000
            yield StopEvent(
                event_id=ids.event(),
                timestamp=_ts(stop_at),
                device_id=device,
                position_s=seconds,
                **common,
            )
            yield WatchRecord(
                event_id=ids.event(),
                timestamp=_ts(stop_at),
                started_at=_ts(at),
                genre=movie.genre,
                device_id=device,
                seconds_watched=seconds,
                movie_duration_s=movie.duration_s,
                completion_ratio=round(min(1.0, seconds / movie.duration_s), 4),
                **common,
            )

    def _credential_stuffing(self, incident: Incident, t: int) -> Generator[EventBase, None, None]:
        rng = self._rng(incident.incident_id)
        ids = _Ids(rng)
        ip = f"185.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        device = f"bot-{rng.getrandbits(32):08x}"
        incident.entity_id = ip
        accounts = rng.randint(55, 90)
        targets = self._stuffing_targets(rng, accounts)
        incident.user_ids, incident.suspect_ids = targets, []
        span = rng.uniform(120_000, 480_000)
        for i, user_id in enumerate(targets):
            exists = not user_id.startswith("x")
            success = exists and rng.random() < 0.08
            reason = "bad_password" if exists else "unknown_user"
            if success:
                incident.suspect_ids.append(user_id)
            login = self._login(
                ids, user_id, t + int(i * span / accounts), ip, device, "NL", success, reason
            )
            yield self._decisive(incident, login, i == 49)

    def _account_takeover(self, incident: Incident, t: int) -> Generator[EventBase, None, None]:
        rng = self._rng(incident.incident_id)
        ids = _Ids(rng)
        victim = self._victim(rng, 3)
        country = rng.choice([c for c, _, _ in COUNTRIES if c != victim.country])
        octet = next(o for c, _, o in COUNTRIES if c == country)
        ip = f"{octet}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        device = f"web-ato-{rng.getrandbits(32):08x}"
        incident.entity_id, incident.user_ids = victim.user_id, [victim.user_id]
        login = self._login(ids, victim.user_id, t, ip, device, country, True)
        yield self._decisive(incident, login, True)
        t += rng.randint(10_000, 60_000)
        disliked = sorted(range(len(GENRES)), key=lambda g: victim.taste[g])[:4]
        session = ids.session()
        for _ in range(rng.randint(3, 6)):
            yield self._search(ids, victim.user_id, t, device, rng, GENRES[rng.choice(disliked)])
            t += rng.randint(3_000, 15_000)
        for _ in range(rng.randint(12, 25)):
            movie = self.world.pick_movie(rng, GENRES[rng.choice(disliked)])
            completion = rng.uniform(30, 200) / movie.duration_s
            t = yield from self._viewing(
                victim.user_id, movie, t, completion, session, device, rng, ids,
                interruptions=False,
            )  # fmt: skip
            t += rng.randint(2_000, 20_000)

    def _stuffing_targets(self, rng: random.Random, accounts: int) -> list[str]:
        """``accounts`` account names a stuffing source tries, in its order: 70% real users,
        the rest names that do not exist."""
        known = rng.sample(self.world.users, k=min(len(self.world.users), int(accounts * 0.7)))
        targets = [u.user_id for u in known]
        targets += [f"x{rng.getrandbits(40):010x}" for _ in range(accounts - len(targets))]
        rng.shuffle(targets)
        return targets

    def _victim(self, rng: random.Random, viewings: int) -> User:
        """A user with a history: at least ``viewings`` viewings and a successful login so
        far (else the one with the most viewings)."""
        seasoned = [u for u in self.world.users if self._viewings.get(u.user_id, 0) >= viewings
                    and self._logins.get(u.user_id)]  # fmt: skip
        if seasoned:
            return rng.choice(seasoned)
        return max(self.world.users, key=lambda u: (self._viewings.get(u.user_id, 0), u.user_id))

    def _ip_in(self, rng: random.Random, country: str) -> str:
        octet = next((o for c, _, o in COUNTRIES if c == country), 203)
        return f"{octet}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def _quiet_takeover(self, incident: Incident, t: int) -> Generator[EventBase, None, None]:
        rng = self._rng(incident.incident_id)
        ids = _Ids(rng)
        victim = self._victim(rng, 8)
        device = f"tv-{rng.getrandbits(32):08x}"
        incident.entity_id, incident.user_ids = victim.user_id, [victim.user_id]
        ip = self._ip_in(rng, victim.country)
        login = self._login(ids, victim.user_id, t, ip, device, victim.country, True)
        yield self._decisive(incident, login, True)
        t += rng.randint(20_000, 120_000)
        disliked = sorted(range(len(GENRES)), key=lambda g: victim.taste[g])[:3]
        session = ids.session()
        for _ in range(rng.randint(6, 10)):
            movie = self.world.pick_movie(rng, GENRES[rng.choice(disliked)])
            completion = min(1.0, rng.uniform(240, 900) / movie.duration_s)
            t = yield from self._viewing(
                victim.user_id, movie, t, completion, session, device, rng, ids,
                interruptions=False,
            )  # fmt: skip
            t += rng.randint(20_000, 120_000)

    def _account_sharing(self, incident: Incident, t: int) -> Generator[EventBase, None, None]:
        rng = self._rng(incident.incident_id)
        ids = _Ids(rng)
        victim = rng.choice(self.world.users)
        incident.entity_id, incident.user_ids = victim.user_id, [victim.user_id]
        buyers = [f"{rng.choice(DEVICE_KINDS)}-rs-{rng.getrandbits(32):08x}"
                  for _ in range(rng.randint(3, 4))]  # fmt: skip
        # Each buyer's device: a login, then movies back to back, all devices at once.
        actors = []
        for n, device in enumerate(buyers):
            start = t + n * rng.randint(30_000, 180_000)
            actors.append(self._buyer(incident, victim, device, start, rng, ids, n == 1))
        heap: list[tuple[int, int, EventBase, Iterator[EventBase]]] = []
        order = itertools.count()
        for actor in actors:
            first = next(actor, None)
            if first is not None:
                heap.append((first.timestamp_ms, next(order), first, actor))
        heapq.heapify(heap)
        while heap:
            _, _, event, actor = heapq.heappop(heap)
            yield event
            following = next(actor, None)
            if following is not None:
                heapq.heappush(heap, (following.timestamp_ms, next(order), following, actor))

    def _buyer(
        self, incident: Incident, victim: User, device: str, t: int, rng: random.Random,
        ids: _Ids, decisive: bool,
    ) -> Iterator[EventBase]:  # fmt: skip
        ip = self._ip_in(rng, victim.country)
        yield self._login(ids, victim.user_id, t, ip, device, victim.country, True)
        t += rng.randint(5_000, 60_000)
        until = t + rng.randint(60, 120) * MINUTE_MS
        session = ids.session()
        first = True
        while t < until:
            movie = self.world.pick_movie(rng, rng.choice(GENRES))
            completion = min(1.0, rng.uniform(600, 1800) / movie.duration_s)
            viewing = self._viewing(victim.user_id, movie, t, completion, session, device, rng,
                                    ids, interruptions=False)  # fmt: skip
            for event in viewing:
                if first:
                    event = self._decisive(incident, event, decisive)
                    first = False
                yield event
                t = event.timestamp_ms
            t += rng.randint(10_000, 120_000)

    def _slow_stuffing(self, incident: Incident, t: int) -> Generator[EventBase, None, None]:
        rng = self._rng(incident.incident_id)
        ids = _Ids(rng)
        ip = f"193.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        device = f"web-{rng.getrandbits(32):08x}"
        incident.entity_id = ip
        accounts = rng.randint(60, 120)
        targets = self._stuffing_targets(rng, accounts)
        incident.user_ids, incident.suspect_ids = targets, []
        span = rng.uniform(3 * HOUR_MS, 6 * HOUR_MS)
        gaps = [rng.expovariate(1.0) for _ in targets]
        scale = span / sum(gaps)
        at = float(t)
        for i, (user_id, gap) in enumerate(zip(targets, gaps, strict=True)):
            at += gap * scale
            exists = not user_id.startswith("x")
            success = exists and rng.random() < 0.05
            if success:
                incident.suspect_ids.append(user_id)
            login = self._login(ids, user_id, int(at), ip, device, "NL", success,
                                "bad_password" if exists else "unknown_user")  # fmt: skip
            yield self._decisive(incident, login, i == 19)

    def _scraper(self, incident: Incident, t: int) -> Generator[EventBase, None, None]:
        rng = self._rng(incident.incident_id)
        ids = _Ids(rng)
        bot = f"us{rng.getrandbits(32):08x}"
        device = f"web-{bot}"
        incident.entity_id, incident.user_ids = bot, [bot]
        ip = f"45.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        yield self._login(ids, bot, t, ip, device, "US", True)
        searches = rng.randint(150, 300)
        span = rng.uniform(2 * HOUR_MS, 3 * HOUR_MS)
        plays = sorted(rng.sample(range(searches), k=rng.randint(0, 3)))
        for i in range(searches):
            at = t + 5_000 + int(i * span / searches) + rng.randint(0, 20_000)
            genre = rng.choice(GENRES)
            yield self._decisive(incident, self._search(ids, bot, at, device, rng, genre), i == 29)
            if i in plays:
                movie = rng.choice(self.world.movies)
                yield PlayEvent(event_id=ids.event(), user_id=bot, movie_id=movie.movie_id,
                                session_id=ids.session(), timestamp=_ts(at + 2_000),
                                device_id=device)  # fmt: skip

    def _new_device(self, incident: Incident, t: int) -> Generator[EventBase, None, None]:
        rng = self._rng(incident.incident_id)
        ids = _Ids(rng)
        user = self._victim(rng, 8)
        incident.entity_id, incident.user_ids = user.user_id, [user.user_id]
        device = f"tv-new-{rng.getrandbits(32):08x}"
        yield self._login(ids, user.user_id, t, user.home_ip, device, user.country, True)
        t += rng.randint(20_000, 120_000)
        session = ids.session()
        for _ in range(rng.randint(2, 5)):
            genre = rng.choices(GENRES, weights=user.taste, k=1)[0]
            movie = self.world.pick_movie(rng, genre)
            completion = rng.uniform(0.55, 1.0)
            t = yield from self._viewing(user.user_id, movie, t, completion, session, device,
                                         rng, ids)  # fmt: skip
            t += rng.randint(60_000, 600_000)

    def _human_binger(self, incident: Incident, t: int) -> Generator[EventBase, None, None]:
        rng = self._rng(incident.incident_id)
        ids = _Ids(rng)
        user = rng.choice(self.world.users)
        incident.entity_id, incident.user_ids = user.user_id, [user.user_id]
        favourite = user.favourite_genres(1)[0]
        series = [m for m in self._episodes if m.genre == favourite] or self._episodes
        device = user.devices[0]
        session = ids.session()
        for _ in range(rng.randint(12, 16)):
            movie = rng.choice(series)
            completion = min(1.0, rng.uniform(180, 270) / movie.duration_s)
            t = yield from self._viewing(
                user.user_id, movie, t, completion, session, device, rng, ids,
                interruptions=False,
            )  # fmt: skip
            t += rng.randint(5_000, 30_000)

    def _shared_ip(self, incident: Incident, t: int) -> Generator[EventBase, None, None]:
        rng = self._rng(incident.incident_id)
        ids = _Ids(rng)
        ip = f"62.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        colleagues = rng.sample(self.world.users, k=min(len(self.world.users), rng.randint(10, 30)))
        incident.entity_id, incident.user_ids = ip, [u.user_id for u in colleagues]
        span = rng.uniform(600_000, 1_200_000)
        offsets = sorted(rng.uniform(0, span) for _ in colleagues)
        for user, offset in zip(colleagues, offsets, strict=True):
            login = self._login(
                ids, user.user_id, t + int(offset), ip, user.devices[0], user.country, True
            )
            yield login
