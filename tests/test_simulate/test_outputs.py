"""The simulator's outputs and pacing, and its command line."""

from collections import defaultdict

import pytest

from movieflix_lab.config import Settings
from movieflix_lab.events import decode
from movieflix_lab.kafka.catalog import create_topics, partition_for_user
from movieflix_lab.kafka.event_writer import TOPIC_BY_EVENT_TYPE
from movieflix_lab.simulate import KafkaSink, SimulationConfig, Simulator, run_simulation, runner
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.kafka import read_back

SMALL = SimulationConfig(seed=31, users=60, movies=80, minutes=None, events=600, activity=40)


def test_kafka_output_lands_every_event_in_its_topic(kafka: Settings) -> None:
    create_topics(kafka)
    result = run_simulation(SMALL, KafkaSink(kafka))
    assert result.events == 600
    expected = list(Simulator(SMALL).events())  # same seed, same events
    by_topic: dict[str, set[str]] = defaultdict(set)
    for event in expected:
        by_topic[TOPIC_BY_EVENT_TYPE[event.event_type].name].add(str(event.event_id))
    for topic, ids in by_topic.items():
        found = read_back(kafka, topic, ids)
        assert set(found) == ids, topic
        for message in found.values():
            event = decode(message.value())
            assert message.partition() == partition_for_user(event.user_id, 6)
            assert message.timestamp()[1] == event.timestamp_ms


class _FakeClock:
    """``time`` for the simulator's runner: sleeping moves the clock, nothing waits.

    The pacing logic is checked here on this clock; what a real clock and scheduler make of
    it is measured by ``benchmarks/simulator.py``."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class _Record:
    def __init__(self, clock: _FakeClock) -> None:
        self.clock, self.at = clock, []  # when each event was written

    def write(self, event: object) -> None:
        self.at.append(self.clock.now)

    def close(self) -> None:
        pass


def test_rate_paces_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    monkeypatch.setattr(runner, "time", clock)
    config = SimulationConfig(seed=1, users=50, movies=60, minutes=None, events=500, activity=40)
    sink = _Record(clock)
    result = run_simulation(config, sink, rate=1000)
    # Event i goes out at start + i/rate: never early, never late, 0.499 s in all.
    assert result.events == 500
    assert sink.at == pytest.approx([1000.0 + i / 1000 for i in range(500)])
    assert result.wall_seconds == pytest.approx(0.499)


def test_speedup_follows_simulated_time(monkeypatch: pytest.MonkeyPatch) -> None:
    config = SimulationConfig(seed=1, users=50, movies=60, minutes=2, activity=40)
    events = list(Simulator(config).events())
    start_ms = Simulator(config).start_ms
    clock = _FakeClock()
    monkeypatch.setattr(runner, "time", clock)
    sink = _Record(clock)
    run_simulation(config, sink, speedup=120)  # 2 simulated minutes in about 1 s
    # Each event goes out when its simulated time comes, 120 times faster.
    expected = [1000.0 + (e.timestamp_ms - start_ms) / 1000 / 120 for e in events]
    assert sink.at == pytest.approx(expected)
    assert 0.9 <= sink.at[-1] - 1000.0 <= 1.0


def test_cli_writes_the_same_jsonl_for_the_same_seed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = cli_env(Settings(data_dir=tmp_path / "data"))
    args = ("simulate", "--seed", "5", "--users", "40", "--events", "300", "--out", "jsonl")
    first = run_cli(*args, env=env)
    second = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 300 and first.stdout == second.stdout
    assert all(decode(line) for line in lines)
    runs = list((tmp_path / "data" / "raw" / "simulations").glob("seed5-u40-300ev-*"))
    assert len(runs) == 1 and (runs[0] / "labels.parquet").exists()

    pinned = run_cli(*args, "--start", "2026-11-20T18:00:00+0000", env=env)
    assert pinned.returncode == 0, pinned.stderr
    assert decode(pinned.stdout.splitlines()[0]).timestamp.isoformat().startswith("2026-11-20T18")
    # Kafka would delete events dated beyond its retention as they are written: refused.
    old = run_cli("simulate", "--events", "10", "--start", "2025-01-01", "--via-gateway",
                  "http://127.0.0.1:9", env=env)  # fmt: skip
    assert old.returncode == 1 and "would delete its events" in old.stderr, old.stderr
    assert "Traceback" not in old.stderr

    bad = run_cli("simulate", "--incident", "aliens=3", env=env)
    assert bad.returncode == 2 and "SCENARIO=PER_HOUR" in bad.stderr
