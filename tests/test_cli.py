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
