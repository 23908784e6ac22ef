"""The simulator's outputs and pacing, and its command line."""

import time
from collections import defaultdict

from movieflix_lab.config import Settings
from movieflix_lab.events import decode
from movieflix_lab.kafka.catalog import create_topics, partition_for_user
from movieflix_lab.kafka.event_writer import TOPIC_BY_EVENT_TYPE
from movieflix_lab.simulate import KafkaSink, SimulationConfig, Simulator, run_simulation
from tests.fixtures import cli_env, read_back, run_cli

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


def test_rate_paces_the_run() -> None:
    class Count:
        n = 0

        def write(self, event: object) -> None:
            self.n += 1

        def close(self) -> None:
            pass

    config = SimulationConfig(seed=1, users=50, movies=60, minutes=None, events=500, activity=40)
    started = time.monotonic()
    result = run_simulation(config, Count(), rate=1000)
    elapsed = time.monotonic() - started
    assert result.events == 500 and 0.45 <= elapsed < 3.0


def test_speedup_follows_simulated_time() -> None:
    config = SimulationConfig(seed=1, users=50, movies=60, minutes=2, activity=40)
    events = list(Simulator(config).events())
    span_s = (events[-1].timestamp_ms - Simulator(config).start_ms) / 1000

    class Null:
        def write(self, event: object) -> None:
            pass

        def close(self) -> None:
            pass

    started = time.monotonic()
    run_simulation(config, Null(), speedup=120)  # 2 simulated minutes in about 1 s
    assert span_s / 120 * 0.9 <= time.monotonic() - started < span_s / 120 + 2.0


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
