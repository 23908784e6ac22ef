"""Soak: the whole pipeline under sustained traffic, with a burst in the middle.

The gateway and every stream app run as child processes (as deployed); a paced generator
POSTs simulated events, restamped to the wall clock, through the gateway at ``rate`` events
per second, except for ``burst_s`` seconds halfway through at ``burst_factor`` times that.
Every ``sample_s`` a monitor records each app's consumer lag (repartition topics included)
and the resident memory of every process. When the time is up the traffic stops and the
apps drain.

What is judged (``SoakResult.goals``):

* **bounded lag** — the largest total lag stays below what the burst itself adds plus the
  steady state's own (``rate * burst_s * burst_factor`` plus the steady peak);
* **recovery** — after the burst, total lag is back to its steady-state level within
  ``recover_goal_s`` (60 s);
* **drained** — once the traffic stops, every app reads to the end (lag 0) within
  ``recover_goal_s``;
* **flat memory** — each process's resident memory in the last third of the run is at most
  ``memory_growth_goal`` times its level in the first third after warm-up;
* **nothing lost** — every event the gateway acknowledged is in its topic.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil

from movieflix_lab.config import Settings
from movieflix_lab.events import EventBase, encode
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.jobs.results import Goal, all_met
from movieflix_lab.provenance import describe, machine

__all__ = ["SoakOptions", "SoakResult", "run_soak", "soak", "write_soak"]

APPS = ("analytics", "fraud", "recs")


@dataclass(frozen=True)
class SoakOptions:
    minutes: float = 10.0
    #: Steady events per second through the gateway.
    rate: float = 500.0
    burst_factor: float = 10.0
    burst_s: float = 5.0
    seed: int = 42
    users: int = 5000
    #: Events per HTTP request.
    batch: int = 50
    sample_s: float = 2.0
    recover_goal_s: float = 60.0
    #: Longest wait for the apps to read what the topics held before the traffic starts.
    catch_up_s: float = 600.0
    memory_growth_goal: float = 1.25

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    @property
    def burst_at(self) -> float:
        """Seconds into the run when the burst starts: halfway."""
        return self.seconds / 2


@dataclass
class SoakResult:
    options: dict[str, Any]
    started_at: str
    #: One row per sample: t (s), phase, events sent, lag per app, RSS (MB) per process.
    samples: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0
    accepted: int = 0
    errors: int = 0
    #: Events acknowledged per topic, and what the topics hold (a broker of the run's own).
    acknowledged_by_topic: dict[str, int] = field(default_factory=dict)
    steady_lag_peak: int = 0
    max_lag: int = 0
    recovered_after_s: float | None = None
    drained_after_s: float | None = None
    memory_growth: dict[str, float] = field(default_factory=dict)
    achieved_rate: float = 0.0
    goals: list[Goal] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=machine)

    @property
    def passed(self) -> bool:
        return all_met(self.goals)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def restamped(
    options: SoakOptions, planned: Callable[[int], datetime] | None = None
) -> Iterator[EventBase]:
    """Simulated events, endlessly, each moved to the wall clock of its sending (or, with
    ``planned``, to ``planned(i)``: when event ``i`` is meant to be sent)."""
    from movieflix_lab.simulate import SimulationConfig, Simulator

    round_, i = 0, 0
    while True:
        config = SimulationConfig(seed=options.seed + round_, users=options.users, minutes=None,
                                  events=500_000, activity=20)  # fmt: skip
        for event in Simulator(config).events():
            now = datetime.now(UTC) if planned is None else planned(i)
            i += 1
            shift = now - event.timestamp
            update: dict[str, Any] = {"timestamp": now}
            if event.event_type == "watch":  # type: ignore[attr-defined]
                update["started_at"] = event.started_at + shift  # type: ignore[attr-defined]
            if round_:
                update["user_id"] = f"{event.user_id}.r{round_}"
            yield event.model_copy(update=update)
        round_ += 1


class Traffic(Protocol):
    """What the soak reads of its traffic while it runs (:class:`PacedTraffic` by default;
    a benchmark may bring a compiled load generator instead)."""

    started: float
    phase: str
    sent: int
    accepted: int
    errors: int
    by_topic: dict[str, int]

    def start(self) -> Traffic: ...
    def stop(self) -> None: ...


#: Makes the traffic: ``(gateway url, options, API key or None)``.
TrafficFactory = Callable[[str, SoakOptions, str | None], Traffic]


def soak_phase(options: SoakOptions, t: float) -> str:
    """The phase of the run ``t`` seconds after the traffic started."""
    if t < min(30.0, options.seconds / 5):
        return "warm-up"
    if t < options.burst_at:
        return "steady"
    if t < options.burst_at + options.burst_s:
        return "burst"
    return "after"


class PacedTraffic:
    """Paced POSTs of batches through the gateway, from a few sender threads."""

    def __init__(self, url: str, options: SoakOptions, api_key: str | None) -> None:
        headers = {"content-type": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        self.client = httpx.Client(base_url=url, headers=headers, timeout=30.0,
                                   limits=httpx.Limits(max_connections=8))  # fmt: skip
        self.options = options
        self.sent = self.accepted = self.errors = 0
        self.by_topic: dict[str, int] = {}
        self.phase = "warm-up"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-traffic", daemon=True)
        self.started = 0.0

    def rate_at(self, t: float) -> float:
        o = self.options
        return o.rate * o.burst_factor if o.burst_at <= t < o.burst_at + o.burst_s else o.rate

    def start(self) -> PacedTraffic:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _post(self, batch: list[bytes]) -> None:
        body = b"[" + b",".join(batch) + b"]"
        try:
            response = self.client.post("/v1/events", content=body)
            ok = response.status_code == 200
            topics = [e["topic"] for e in response.json()["events"]] if ok else []
        except (httpx.HTTPError, ValueError, KeyError):
            ok, topics = False, []
        with self._lock:
            if ok:
                self.accepted += len(batch)
                for topic in topics:
                    self.by_topic[topic] = self.by_topic.get(topic, 0) + 1
            else:
                self.errors += 1

    def _run(self) -> None:
        events = restamped(self.options)
        owed = 0.0
        last = time.monotonic()
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="soak-post") as pool:
            pending: list[Any] = []
            while not self._stop.is_set():
                now = time.monotonic()
                t = now - self.started
                owed += self.rate_at(t) * (now - last)
                last = now
                self.phase = soak_phase(self.options, t)
                while owed >= self.options.batch:
                    batch = [encode(next(events)) for _ in range(self.options.batch)]
                    owed -= self.options.batch
                    self.sent += len(batch)
                    pending = [f for f in pending if not f.done()]
                    if len(pending) > 64:  # the gateway is behind: do not queue forever
                        pending[0].result()
                    pending.append(pool.submit(self._post, batch))
                time.sleep(0.005)
            for future in pending:
                future.result()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()


def _lag_by_app(settings: Settings) -> dict[str, int]:
    from movieflix_lab.kafka.lag import consumer_lag
    from movieflix_lab.streams.app import group_name

    groups = {group_name(settings, app): app for app in APPS}
    totals = dict.fromkeys(APPS, 0)
    for row in consumer_lag(settings, list(groups)):
        totals[groups[row.group]] += row.lag
    return totals


def _per_child(
    processes: dict[str, psutil.Process], measure: Callable[[psutil.Process], float]
) -> dict[str, float]:
    """``measure`` summed over each child and its own children (``stream`` apps fork none,
    uvicorn may); 0 for a child that is gone."""
    out = {}
    for name, process in processes.items():
        try:
            out[name] = sum(measure(p) for p in [process, *process.children(recursive=True)])
        except psutil.NoSuchProcess:
            out[name] = 0.0
    return out


def _memory_mb(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """Resident memory of each child, its own children included."""
    used = _per_child(processes, lambda p: p.memory_info().rss / 2**20)
    return {name: round(mb, 1) for name, mb in used.items()}


def _cpu_s(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """CPU seconds (user + system) each child has used so far, its own children included."""
    used = _per_child(processes, lambda p: sum(p.cpu_times()[:2]))
    return {name: round(seconds, 2) for name, seconds in used.items()}


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores; idle and I/O wait excluded)."""
    times = psutil.cpu_times()
    return round(sum(times) - times.idle - getattr(times, "iowait", 0.0), 2)


def _children_by_role() -> dict[str, psutil.Process]:
    roles = {}
    for child in psutil.Process().children():
        try:
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        for app in APPS:
            if command.endswith(f"stream {app}"):
                roles[app] = child
        if " serve " in f"{command} ":
            roles["gateway"] = child
    return roles


def run_soak(
    settings: Settings,
    options: SoakOptions,
    *,
    say: Callable[[str], None] = lambda _: None,
    progress: Callable[[float, dict[str, Any]], None] | None = None,
    make_traffic: TrafficFactory | None = None,
) -> SoakResult:
    """Run the soak on ``settings``' cluster (topics created if missing); see the module.

    ``make_traffic`` makes the load (by default :class:`PacedTraffic`, Python threads in this
    process); each sample records this process's CPU and, when the traffic reports it
    (``cpu_s()``), the load generator's."""
    from movieflix_lab.jobs.processes import gateway_process, stream_process
    from movieflix_lab.kafka.catalog import create_topics, describe_topics

    create_topics(settings)
    before = {d.name: d.messages for d in describe_topics(settings) if d.in_catalog}
    result = SoakResult(asdict(options), datetime.now(UTC).isoformat(timespec="seconds"))
    with ExitStack() as stack:
        for app in APPS:
            stack.enter_context(stream_process(settings, app))
        url = stack.enter_context(gateway_process(settings))
        say(f"gateway at {url}; stream apps {', '.join(APPS)} started")
        processes = _children_by_role()
        missing = {*APPS, "gateway"} - set(processes)
        if missing:
            raise MovieflixError(f"soak: could not find the processes of {sorted(missing)}")
        _catch_up(settings, options, say)
        traffic = (make_traffic or PacedTraffic)(url, options, settings.api_key_value).start()
        say(
            f"traffic: {options.rate:g} events/s for {options.minutes:g} min, "
            f"{options.burst_factor:g}x for {options.burst_s:g} s at {options.burst_at:.0f} s"
        )
        try:
            while (t := time.monotonic() - traffic.started) < options.seconds:
                time.sleep(max(0.0, options.sample_s - (time.monotonic() - traffic.started - t)))
                result.samples.append(_sample(settings, traffic, processes))
                if progress is not None:
                    progress(min(t, options.seconds), result.samples[-1])
                for role, process in processes.items():
                    if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                        raise MovieflixError(f"soak: the {role} process stopped")
        finally:
            traffic.stop()
        stopped = time.monotonic()
        say(f"traffic stopped: {traffic.accepted:,} events accepted; draining")
        while time.monotonic() - stopped < options.recover_goal_s * 2:
            sample = _sample(settings, traffic, processes, phase="drain")
            result.samples.append(sample)
            if sum(sample["lag"].values()) == 0:
                result.drained_after_s = round(time.monotonic() - stopped, 1)
                break
            time.sleep(options.sample_s)
    after = {d.name: d.messages for d in describe_topics(settings) if d.in_catalog}
    result.sent, result.accepted, result.errors = traffic.sent, traffic.accepted, traffic.errors
    result.acknowledged_by_topic = dict(sorted(traffic.by_topic.items()))
    result.achieved_rate = round(traffic.accepted / options.seconds, 1)
    _judge(result, options, {t: after.get(t, 0) - before.get(t, 0) for t in after})
    return result


def _catch_up(settings: Settings, options: SoakOptions, say: Callable[[str], None]) -> None:
    """Let the apps read what the topics already hold before the traffic starts.

    On a broker that earlier runs wrote to, an app may start behind (a partition its group
    never committed on is read from the start): that backlog is not the soak's traffic and
    would be judged as its lag.
    """
    from movieflix_lab.streams.runner import outstanding, wait_for_catch_up

    waiting = {app: outstanding(settings, app, "at-least-once") for app in APPS}
    if not any(waiting.values()):
        return
    say("catching up first with what the topics already hold: "
        + ", ".join(f"{app} {n:,}" for app, n in waiting.items()))  # fmt: skip
    for app in APPS:
        left = wait_for_catch_up(settings, app, timeout=options.catch_up_s)
        if left:
            raise MovieflixError(
                f"soak: the {app} app still had {left:,} records to read after "
                f"{options.catch_up_s:g} s of catching up; run it on a fresh broker "
                "(`movieflix-lab broker stop`, remove data/kafka) or raise --catch-up"
            )


def _sample(
    settings: Settings, traffic: Traffic, processes: dict[str, psutil.Process], phase: str = ""
) -> dict[str, Any]:
    load = getattr(traffic, "cpu_s", None)
    return {
        "self_cpu_s": round(sum(psutil.Process().cpu_times()[:2]), 2),
        "load_cpu_s": round(load(), 2) if load is not None else None,
        "t": round(time.monotonic() - traffic.started, 1),
        "phase": phase or traffic.phase,
        "sent": traffic.sent,
        "accepted": traffic.accepted,
        "lag": _lag_by_app(settings),
        "rss_mb": _memory_mb(processes),
        "cpu_s": _cpu_s(processes),
        "machine_busy_s": _machine_busy_s(),
    }


def _judge(result: SoakResult, options: SoakOptions, written: dict[str, int]) -> None:
    samples = result.samples

    def total(sample: dict[str, Any]) -> int:
        return sum(sample["lag"].values())

    steady = [total(s) for s in samples if s["phase"] == "steady"]
    result.steady_lag_peak = max(steady, default=0)
    result.max_lag = max((total(s) for s in samples), default=0)
    burst_end = options.burst_at + options.burst_s
    level = max(result.steady_lag_peak, int(options.rate * options.sample_s))
    for sample in samples:
        if sample["t"] >= burst_end and total(sample) <= level:
            result.recovered_after_s = round(sample["t"] - burst_end, 1)
            break
    warm = _warm(samples)
    third = max(1, len(warm) // 3)
    for role in samples[0]["rss_mb"] if samples else []:
        early = statistics.median(s["rss_mb"][role] for s in warm[:third])
        late = statistics.median(s["rss_mb"][role] for s in warm[-third:])
        result.memory_growth[role] = round(late / early, 3) if early else 0.0
    bound = int(options.rate * options.burst_factor * options.burst_s) + level
    lost = {t: n for t, n in result.acknowledged_by_topic.items() if written.get(t, 0) < n}
    growth = max(result.memory_growth.values()) if result.memory_growth else None
    result.goals = [
        Goal.check("bounded lag", result.max_lag, "<=", bound),
        Goal.check("recovery after the burst (s)", result.recovered_after_s, "<=",
                   options.recover_goal_s),
        Goal.check("drained after the traffic (s)", result.drained_after_s, "<=",
                   options.recover_goal_s),
        Goal.check("memory growth (late / early)", growth, "<=", options.memory_growth_goal),
        Goal.check("acknowledged events lost", sum(lost.values()), "==", 0),
        Goal.check("gateway errors", result.errors, "==", 0),
    ]  # fmt: skip


def _warm(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples memory is judged on: traffic running, warm-up over."""
    return [s for s in samples if s["phase"] in ("steady", "burst", "after")]


def _memory_rows(result: SoakResult) -> list[str]:
    warm = _warm(result.samples)
    if not warm:
        return []
    before = [s for s in warm if s["phase"] == "steady"]
    rows = []
    for role, growth in result.memory_growth.items():
        first, end = warm[0]["rss_mb"][role], warm[-1]["rss_mb"][role]
        peak = max(s["rss_mb"][role] for s in warm)
        steady = before[-1]["rss_mb"][role] if before else first
        rows.append(f"| {role} | {first:.0f} | {steady:.0f} | {peak:.0f} | {end:.0f} | {growth} |")
    return rows


def write_soak(result: SoakResult, folder: Path) -> Path:
    """``soak.json`` (every sample) and ``soak.md`` (the goals) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "soak.json").write_text(result.to_json() + "\n")
    o = result.options
    lines = [
        f"# Soak {result.started_at}",
        "",
        f"{o['rate']:g} events/s for {o['minutes']:g} min through the gateway, a "
        f"{o['burst_factor']:g}x burst for {o['burst_s']:g} s halfway; {result.accepted:,} "
        f"events accepted ({result.achieved_rate:,.0f}/s).",
        "",
        "| goal | value | target | met |",
        "|---|---|---|---|",
        *(f"| {g.name} | {g.value} | {g.target} | {'yes' if g.met else 'NO'} |"
          for g in result.goals),
        "",
        "Resident memory (MB) of each process:",
        "",
        "| process | after warm-up | before the burst | peak | at the end | late / early |",
        "|---|---|---|---|---|---|",
        *_memory_rows(result),
        "",
        describe(result.machine),
    ]  # fmt: skip
    (folder / "soak.md").write_text("\n".join(lines) + "\n")
    return folder / "soak.md"


def soak(
    settings: Settings,
    options: SoakOptions,
    *,
    say: Callable[[str], None] = lambda _: None,
    progress: Callable[[float, dict[str, Any]], None] | None = None,
) -> tuple[SoakResult, Path]:
    """``movieflix-lab soak``: the soak on the configured cluster (the local broker is
    started if needed, and left running), written to ``reports/soak/<start>/``."""
    from movieflix_lab.kafka.broker import broker_session

    with broker_session(settings, stop_after=False):
        result = run_soak(settings, options, say=say, progress=progress)
    folder = settings.reports_dir / "soak" / result.started_at.replace(":", "")
    return result, write_soak(result, folder)
