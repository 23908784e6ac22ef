"""The command line's face: one-line errors, --debug, python -m."""

from movieflix_lab.config import Settings
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.kafka import free_port


def _no_broker_env() -> dict[str, str]:
    # Nothing listens there: the commands give up after 2 s instead of 10.
    return cli_env(Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}"),
                   MOVIEFLIX_KAFKA_CONNECT_TIMEOUT_S="2")  # fmt: skip


def test_errors_are_one_line_without_a_traceback() -> None:
    result = run_cli("topics", "describe", env=_no_broker_env())
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: no Kafka broker answers at 127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback() -> None:
    result = run_cli("--debug", "topics", "describe", env=_no_broker_env())
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "KafkaUnavailable" in result.stderr


def test_invalid_setting_names_the_variable() -> None:
    env = _no_broker_env() | {"MOVIEFLIX_TOPIC_PARTITIONS": "many"}
    result = run_cli("topics", "create", env=env)
    assert result.returncode == 1
    assert "MOVIEFLIX_TOPIC_PARTITIONS" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands() -> None:
    result = run_cli("--help", env=_no_broker_env())
    assert result.returncode == 0
    for command in ("broker", "topics", "demo"):
        assert command in result.stdout


def test_topics_create_and_describe_through_the_cli(kafka: Settings) -> None:
    env = cli_env(kafka)
    created = run_cli("topics", "create", env=env)
    assert created.returncode == 0, created.stderr
    described = run_cli("topics", "describe", env=env)
    assert described.returncode == 0, described.stderr
    rows = {line.split("│")[1].strip(): line for line in described.stdout.splitlines()
            if line.count("│") > 2}  # fmt: skip
    assert "compact" in rows["watch-history"]
    for name in ("user-interactions", "search-events", "login-events", "fraud-signals",
                 "dead-letters"):  # fmt: skip
        assert name in rows


def test_listings_keep_every_name_whole_at_80_columns_and_have_json(
    kafka: Settings, group_prefix: str
) -> None:
    import json
    import time

    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    from movieflix_lab.kafka.catalog import TopicSpec, create_topics
    from movieflix_lab.kafka.client import consumer, producer

    group = f"{group_prefix}movieflix-analytics"
    topic = f"repartition__{group}--watch-history--genre-and-device"
    create_topics(kafka, specs=[TopicSpec(topic, "test", "none", {}, partitions=2)])
    writer = producer(kafka)
    for i in range(6):
        writer.produce(topic, b"x", partition=i % 2)
    writer.flush(30)
    member = consumer(kafka, group_id=group, **{"enable.auto.commit": False})
    for attempt in range(60):  # a fresh broker's coordinator may still be loading or moving
        try:
            member.commit(offsets=[TopicPartition(topic, 0, 1), TopicPartition(topic, 1, 3)],
                          asynchronous=False)  # fmt: skip
            break
        except KafkaException as exc:
            if (
                not exc.args[0].retriable()
                and exc.args[0].code()
                not in (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
            ) or attempt == 59:
                raise
            time.sleep(0.5)
    member.close()
    env = cli_env(kafka)

    def lines(*args: str) -> list[str]:
        result = run_cli(*args, env=env, columns=80)
        assert result.returncode == 0, result.stderr
        assert all(len(line) <= 80 for line in result.stdout.splitlines() if topic not in line)
        return [line.strip(" │┃") for line in result.stdout.splitlines()]

    assert topic in lines("topics", "describe")  # one line, not cut
    lag = lines("lag", "--group", group)
    assert group in lag and topic in lag
    watched = lines("lag", "--group", group, "--watch", "--window", "1", "--interval", "1")
    assert group in watched and topic in watched
    assert any("STOP" in line for line in watched)  # lag on partition 0, no commit since

    check = run_cli("lag", "--group", group, "--check", "--window", "1", "--interval", "1",
                    env=env, columns=80)  # fmt: skip
    assert check.returncode == 1
    assert check.stderr.strip().splitlines() == [
        f"error: not OK: {group} ERR (STOP on 1 of 2 partitions)"
    ]

    watch_args = ("lag", "--group", group, "--watch", "--window", "1", "--interval", "1")
    for args in (("topics", "describe"), ("topics", "create"), ("lag", "--group", group),
                 watch_args):  # fmt: skip
        result = run_cli(*args, "--json", env=env, columns=80)
        assert result.returncode == 0, result.stderr
        json.loads(result.stdout)  # stdout holds the JSON and nothing else
    [watch] = json.loads(result.stdout)["groups"]
    assert (watch["group"], watch["status"], watch["worst"]) == (group, "ERR", "STOP")
    assert [p["status"] for p in watch["partitions"]] == ["STOP", "OK"]
