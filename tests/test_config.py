from pathlib import Path

import pytest
from pydantic import ValidationError

from movieflix_lab.config import PROJECT_ROOT, Settings
from movieflix_lab.kafka.client import client_config


@pytest.fixture(autouse=True)
def _no_movieflix_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the MOVIEFLIX_* variables it sets itself."""
    import os

    for key in list(os.environ):
        if key.startswith("MOVIEFLIX_") or key == "JAVA_HOME":
            monkeypatch.delenv(key)


def test_paths_are_anchored_at_the_project_root() -> None:
    settings = Settings()
    assert (PROJECT_ROOT / "pyproject.toml").is_file()
    assert settings.data_dir == PROJECT_ROOT / "data"
    assert settings.broker_dir == PROJECT_ROOT / "data" / "kafka"
    assert settings.processed_dir == PROJECT_ROOT / "data" / "processed"


def test_environment_variables_use_the_movieflix_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEFLIX_KAFKA_BOOTSTRAP", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("MOVIEFLIX_TOPIC_PARTITIONS", "24")
    monkeypatch.setenv("MOVIEFLIX_KAFKA_CLIENT_CONFIG", '{"client.rack": "eu-1a"}')
    settings = Settings()
    assert settings.bootstrap_servers == "broker-a:9092,broker-b:9092"
    assert not settings.uses_local_broker
    assert settings.topic_partitions == 24
    assert client_config(settings)["client.rack"] == "eu-1a"


def test_blank_bootstrap_means_the_local_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEFLIX_KAFKA_BOOTSTRAP", "  ")
    monkeypatch.setenv("MOVIEFLIX_LOCAL_KAFKA_PORT", "19999")
    settings = Settings()
    assert settings.uses_local_broker
    assert settings.bootstrap_servers == "127.0.0.1:19999"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.topic_partitions = 3  # type: ignore[misc]


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValidationError, match="topic_partitions"):
        Settings(topic_partitions=0)
    with pytest.raises(ValidationError, match="must differ"):
        Settings(local_kafka_port=9092, local_controller_port=9092)


def test_sasl_and_tls_settings_reach_the_clients(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = Settings(
        kafka_bootstrap="kafka.example:9094",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="lab",
        kafka_sasl_password="s3cret",
        kafka_ssl_ca_location=ca,
    )
    config = client_config(settings)
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.password"] == "s3cret"
    assert config["ssl.ca.location"] == str(ca)
    assert "s3cret" not in repr(settings)


def test_only_config_reads_the_environment() -> None:
    offenders = [
        path.relative_to(PROJECT_ROOT)
        for path in (PROJECT_ROOT / "movieflix_lab").rglob("*.py")
        if path.name != "config.py"
        and any(needle in path.read_text() for needle in ("os.environ", "os.getenv", "getenv("))
    ]
    assert offenders == []
