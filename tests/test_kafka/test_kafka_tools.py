"""Kafka's own tools through ``movieflix-lab kafka-tool``, and ``lag`` checked against them."""

from __future__ import annotations

import json

from confluent_kafka import TopicPartition

from movieflix_lab.config import Settings
from movieflix_lab.kafka.catalog import TopicSpec, create_topics
from movieflix_lab.kafka.client import consumer, producer
from movieflix_lab.kafka.tools import TOOLS
from tests.fixtures.cli import cli_env, run_cli


def _fill(settings: Settings, topic: str, per_partition: int, partitions: int) -> None:
    create_topics(settings, specs=[TopicSpec(topic, "test", "none", {}, partitions=partitions)])
    writer = producer(settings)
    for p in range(partitions):
        for i in range(per_partition):
            writer.produce(topic, f"{p}-{i}".encode(), partition=p)
    writer.flush(30)


def test_consumer_group_command_sees_the_offsets_and_lag_lag_sees(
    kafka: Settings, unique_topic: str, group_prefix: str
) -> None:
    _fill(kafka, unique_topic, per_partition=10, partitions=2)
    group = f"{group_prefix}cross-check"
    member = consumer(kafka, group_id=group, **{"enable.auto.commit": False})
    member.commit(offsets=[TopicPartition(unique_topic, 0, 3), TopicPartition(unique_topic, 1, 10)],
                  asynchronous=False)  # fmt: skip
    member.close()
    env = cli_env(kafka)

    described = run_cli("kafka-tool", "consumer-groups", "--describe", "--group", group, env=env)
    assert described.returncode == 0, described.stderr
    lines = described.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["GROUP"])
    columns = lines[header].split()
    theirs = {}
    for line in lines[header + 1 :]:
        row = dict(zip(columns, line.split(), strict=False))
        if row.get("TOPIC") == unique_topic:
            offsets = (row["CURRENT-OFFSET"], row["LOG-END-OFFSET"], row["LAG"])
            theirs[int(row["PARTITION"])] = tuple(int(n) for n in offsets)
    assert theirs == {0: (3, 10, 7), 1: (10, 10, 0)}

    ours = run_cli("lag", "--group", group, "--json", env=env)
    assert ours.returncode == 0, ours.stderr
    assert {r["partition"]: (r["committed"], r["end"], r["lag"])
            for r in json.loads(ours.stdout)} == theirs  # fmt: skip


def test_dump_log_reads_a_segment_and_topics_lists_with_the_kits_address(
    kafka: Settings, unique_topic: str
) -> None:
    if not kafka.uses_local_broker:
        return  # the segment files are the local broker's
    _fill(kafka, unique_topic, per_partition=4, partitions=1)
    env = cli_env(kafka)
    listed = run_cli("kafka-tool", "topics", "--list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert unique_topic in listed.stdout.split()
    segment = kafka.broker_dir / "storage" / f"{unique_topic}-0" / f"{0:020d}.log"
    dumped = run_cli("kafka-tool", "dump-log", "--files", str(segment), "--print-data-log", env=env)
    assert dumped.returncode == 0, dumped.stderr
    payloads = [line for line in dumped.stdout.splitlines() if "payload:" in line]
    assert [line.rsplit("payload: ", 1)[1] for line in payloads] == [f"0-{i}" for i in range(4)]


def test_kafka_tool_help_names_the_tools_and_errors_are_one_line(kafka: Settings) -> None:
    env = cli_env(kafka)
    helped = run_cli("kafka-tool", "--help", env=env)
    assert helped.returncode == 0
    for name in TOOLS:
        assert name in helped.stdout
    tool_help = run_cli("kafka-tool", "transactions", "--help", env=env)  # the tool's own
    assert "list" in tool_help.stdout + tool_help.stderr

    unknown = run_cli("kafka-tool", "no-such-tool", env=env)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        f"error: no Kafka tool 'no-such-tool'; the tools: {', '.join(TOOLS)}"
    ]
    without_java = {k: v for k, v in env.items() if k not in ("JAVA_HOME", "MOVIEFLIX_JAVA_HOME")}
    no_java = run_cli(
        "kafka-tool", "topics", "--list", env={**without_java, "PATH": "/nonexistent"}
    )
    [line] = no_java.stderr.strip().splitlines()
    assert no_java.returncode == 1
    assert "Java not found: Kafka's tools need it" in line and "openjdk-17" in line
