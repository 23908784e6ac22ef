"""The local broker's lifecycle through the CLI, as a user runs it."""

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from movieflix_lab.config import Settings
from movieflix_lab.kafka.broker import LocalBroker, _java_major
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.kafka import local_broker_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A broker of this module's own (not the session's), stopped at the end."""
    settings = local_broker_settings(tmp_path_factory.mktemp("lifecycle") / "broker")
    yield settings
    LocalBroker(settings).stop()


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_start_status_double_start_stop(own_broker: Settings) -> None:
    env = cli_env(own_broker)
    stopped = run_cli("broker", "status", env=env)
    assert stopped.returncode == 3 and "stopped" in stopped.stdout
    stopped_json = run_cli("broker", "status", "--json", env=env)
    assert stopped_json.returncode == 3 and json.loads(stopped_json.stdout)["running"] is False

    started = run_cli("broker", "start", env=env)
    assert started.returncode == 0, started.stderr
    assert own_broker.bootstrap_servers in started.stdout
    assert "Kafka 4.3.1 running" in started.stdout

    # It is a real broker: a record goes in and comes back out.
    config = {"bootstrap.servers": own_broker.bootstrap_servers}
    admin_topic = "lifecycle-check"
    from movieflix_lab.kafka.catalog import TopicSpec, create_topics

    create_topics(own_broker, specs=[TopicSpec(admin_topic, "test", "none", partitions=1)])
    producer = Producer(config)
    producer.produce(admin_topic, key=b"k", value=b"hello")
    assert producer.flush(10) == 0
    consumer = Consumer({**config, "group.id": "lifecycle", "auto.offset.reset": "earliest"})
    consumer.subscribe([admin_topic])
    message = None
    for _ in range(50):
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            break
    consumer.close()
    assert message is not None and message.value() == b"hello"

    again = run_cli("broker", "start", env=env)
    assert again.returncode == 0 and "already running" in again.stdout

    status = run_cli("broker", "status", env=env)
    assert status.returncode == 0
    pid = json.loads((own_broker.broker_dir / "broker.json").read_text())["pid"]
    for expected in ("running", str(pid), own_broker.bootstrap_servers, "4.3.1"):
        assert expected in status.stdout
    described = json.loads(run_cli("broker", "status", "--json", env=env).stdout)
    assert described["running"] is True and described["pid"] == pid
    assert (described["address"], described["kafka_version"]) == (
        own_broker.bootstrap_servers,
        "4.3.1",
    )
    assert (own_broker.broker_dir / "logs" / "server.log").stat().st_size > 0
    assert "Kafka Server started" not in started.stdout + started.stderr  # logs go to the file

    stop = run_cli("broker", "stop", env=env)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert run_cli("broker", "status", env=env).returncode == 3
    assert "not running" in run_cli("broker", "stop", env=env).stdout


def test_stale_pid_file_is_noticed_and_cleaned(own_broker: Settings) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file = own_broker.broker_dir / "broker.json"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(json.dumps({"pid": gone.pid, "bootstrap": "x", "version": "4.3.1"}))

    status = run_cli("broker", "status", env=cli_env(own_broker))
    assert status.returncode == 3
    assert "stale pid file" in status.stdout
    assert not pid_file.exists()

    # A pid file naming a live process that is not our broker is stale too.
    pid_file.write_text(json.dumps({"pid": os.getpid()}))
    started = run_cli("broker", "start", env=cli_env(own_broker))
    assert started.returncode == 0, started.stderr
    assert "stale pid file" in started.stdout and "running" in started.stdout
    assert run_cli("broker", "stop", env=cli_env(own_broker)).returncode == 0


def _without_movieflix_java(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in ("JAVA_HOME", "MOVIEFLIX_JAVA_HOME")}


def test_missing_java_is_a_one_line_error(own_broker: Settings) -> None:
    env = _without_movieflix_java(cli_env(own_broker, PATH="/nonexistent"))
    line = _one_line_error(run_cli("broker", "start", env=env))
    assert "Java not found" in line and "openjdk-17" in line


def test_old_java_is_a_one_line_error(own_broker: Settings, tmp_path: Path) -> None:
    fake_bin = tmp_path / "jdk11" / "bin"
    fake_bin.mkdir(parents=True)
    java = fake_bin / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    env = cli_env(own_broker, PATH="/nonexistent", JAVA_HOME=str(tmp_path / "jdk11"))
    line = _one_line_error(run_cli("broker", "start", env=env))
    assert "Java 11" in line and "17+" in line


def test_missing_maven_is_a_one_line_error(own_broker: Settings, tmp_path: Path) -> None:
    java_home = Path(os.path.realpath("/usr/bin/java")).parent.parent
    env = cli_env(
        own_broker,
        PATH="/nonexistent",
        JAVA_HOME=str(java_home),
        MOVIEFLIX_KAFKA_LIBS_DIR=str(tmp_path / "no-libs"),
    )
    line = _one_line_error(run_cli("broker", "start", env=env))
    assert "Maven not found" in line and "apt-get install maven" in line


def test_external_cluster_never_starts_the_local_broker(own_broker: Settings) -> None:
    env = cli_env(own_broker, MOVIEFLIX_KAFKA_BOOTSTRAP="127.0.0.1:1")
    line = _one_line_error(run_cli("broker", "start", env=env))
    assert "MOVIEFLIX_KAFKA_BOOTSTRAP is set" in line
    assert not (own_broker.broker_dir / "broker.json").exists()


@pytest.mark.parametrize(
    ("output", "major"),
    [('openjdk version "21.0.2" 2024-01-16', 21), ('java version "1.8.0_402"', 8)],
)
def test_java_version_parsing(output: str, major: int) -> None:
    assert _java_major(output) == major


def test_cluster_ids_never_look_like_an_option() -> None:
    """A base64url id starts with '-' one time in 64; the storage tool would read an option."""
    from movieflix_lab.kafka.broker import _random_cluster_id

    ids = [_random_cluster_id() for _ in range(5000)]
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids) and len(set(ids)) == len(ids)


def test_a_three_node_cluster_through_the_cli(tmp_path: Path) -> None:
    """``broker start --nodes 3``: every node listed; one stopped and started on its own;
    ``broker stop`` stops them all; the node count is remembered between commands."""
    from tests.fixtures.cluster import cluster_settings

    settings = cluster_settings(tmp_path / "cluster")
    env = {k: v for k, v in cli_env(settings).items() if k != "MOVIEFLIX_LOCAL_KAFKA_NODES"}
    try:
        started = run_cli("broker", "start", "--nodes", "3", env=env)
        assert started.returncode == 0, started.stderr
        assert "3 nodes at" in started.stdout
        # Remembered: no --nodes, no MOVIEFLIX_LOCAL_KAFKA_NODES.
        described = json.loads(run_cli("broker", "status", "--json", env=env).stdout)
        nodes = described["nodes"]
        assert [n["id"] for n in nodes] == [1, 2, 3] and all(n["running"] for n in nodes)
        assert all(n["roles"] == "broker,controller" for n in nodes)
        assert described["address"] == settings.bootstrap_servers
        assert len({n["address"] for n in nodes} | {n["controller_address"] for n in nodes}) == 6
        for node in nodes:
            assert Path(node["log"]).is_file() and f"node-{node['id']}" in node["log"]
        table = run_cli("broker", "status", env=env)
        assert table.returncode == 0 and table.stdout.count("broker,controller") == 3

        stopped = run_cli("broker", "stop", "--node", "2", env=env)
        assert stopped.returncode == 0 and "node 2 stopped" in stopped.stdout
        partial = run_cli("broker", "status", "--json", env=env)
        assert partial.returncode == 4, partial.stdout
        assert [n["running"] for n in json.loads(partial.stdout)["nodes"]] == [True, False, True]
        assert "2 of 3 nodes running" in run_cli("broker", "status", env=env).stdout

        back = run_cli("broker", "start", "--node", "2", env=env)
        assert back.returncode == 0 and "node 2 running" in back.stdout, back.stderr
        wrong = run_cli("broker", "start", "--nodes", "1", env=env)
        assert "stop it" in _one_line_error(wrong)
        missing = run_cli("broker", "stop", "--node", "7", env=env)
        assert "node 7 does not exist" in _one_line_error(missing)
    finally:
        done = run_cli("broker", "stop", env=env)
    assert done.returncode == 0 and "stopped" in done.stdout
    final = run_cli("broker", "status", "--json", env=env)
    assert final.returncode == 3
    assert not any(n["running"] for n in json.loads(final.stdout)["nodes"])
