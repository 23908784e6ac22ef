"""Shared fixtures: the real Kafka broker (one per test session) and CLI helpers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Message

from movieflix_lab.config import Settings
from movieflix_lab.kafka.broker import LocalBroker
from movieflix_lab.kafka.client import consumer

ENV_BOOTSTRAP = "MOVIEFLIX_KAFKA_BOOTSTRAP"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_broker_settings(home: Path) -> Settings:
    """Settings for a local broker of its own: a temporary home and free ports."""
    return Settings(
        kafka_bootstrap=None,
        kafka_data_dir=home,
        local_kafka_port=free_port(),
        local_controller_port=free_port(),
        data_dir=home.parent / "data",
        models_dir=home.parent / "models",
        reports_dir=home.parent / "reports",
    )


def with_settings(settings: Settings, **changes: object) -> Settings:
    """A validated copy of ``settings`` with ``changes`` (``model_copy`` would not validate)."""
    return Settings(**{**settings.model_dump(), **changes})


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """An environment in which ``movieflix-lab`` uses ``settings``' cluster and paths."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEFLIX_")}
    env["MOVIEFLIX_DATA_DIR"] = str(settings.data_dir)
    env["MOVIEFLIX_MODELS_DIR"] = str(settings.models_dir)
    env["MOVIEFLIX_REPORTS_DIR"] = str(settings.reports_dir)
    if settings.uses_local_broker:
        env["MOVIEFLIX_KAFKA_DATA_DIR"] = str(settings.broker_dir)
        env["MOVIEFLIX_LOCAL_KAFKA_PORT"] = str(settings.local_kafka_port)
        env["MOVIEFLIX_LOCAL_CONTROLLER_PORT"] = str(settings.local_controller_port)
    else:
        env[ENV_BOOTSTRAP] = settings.bootstrap_servers
        for key, value in os.environ.items():  # SASL/TLS settings of the external cluster
            if key.startswith("MOVIEFLIX_KAFKA_"):
                env[key] = value
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m movieflix_lab ARGS`` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "movieflix_lab", *args],
        env={**env, "COLUMNS": "200", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_back(settings: Settings, topic: str, event_ids: set[str], timeout: float = 30) -> dict:
    """The messages of ``topic`` whose event ids are in ``event_ids``, by event id."""
    reader = consumer(settings)
    reader.subscribe([topic])
    found: dict[str, Message] = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(found) < len(event_ids):
            for message in reader.consume(num_messages=1000, timeout=0.5):
                if message.error() is None:
                    event_id = json.loads(message.value()).get("event_id")  # others write too
                    if event_id in event_ids:
                        found[event_id] = message
    finally:
        reader.close()
    return found


@contextmanager
def running_broker(home: Path) -> Iterator[Settings]:
    """A local broker of its own in ``home`` on free ports, stopped on the way out."""
    settings = local_broker_settings(home)
    broker = LocalBroker(settings)
    broker.start()
    try:
        yield settings
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a real Kafka cluster for the whole session.

    ``MOVIEFLIX_KAFKA_BOOTSTRAP`` set: that cluster. Otherwise the kit's own local broker
    (Apache Kafka 4.3.1 from Maven Central) on free ports with a temporary home, stopped
    at the end of the session.
    """
    if os.environ.get(ENV_BOOTSTRAP):
        yield Settings()
        return
    with running_broker(tmp_path_factory.mktemp("kafka") / "broker") as settings:
        yield settings


@pytest.fixture
def unique_topic() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"
