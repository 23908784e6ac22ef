"""Settings and paths: the one place MovieFlix Lab reads environment variables.

Every setting has the env prefix ``MOVIEFLIX_`` (``MOVIEFLIX_KAFKA_BOOTSTRAP``,
``MOVIEFLIX_TOPIC_PARTITIONS``, ...). Paths default to folders under the project root, so a
command behaves the same from any working directory.

Examples
--------
>>> s = Settings(kafka_bootstrap="kafka-1:9092,kafka-2:9092")
>>> s.uses_local_broker
False
>>> Settings(kafka_bootstrap=None, local_kafka_port=19092).bootstrap_servers
'127.0.0.1:19092'
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "PROJECT_ROOT",
    "Settings",
    "child_environment",
    "get_settings",
    "settings_environment",
]

#: The project root: the folder holding ``pyproject.toml`` and ``movieflix_lab/``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


class Settings(BaseSettings):
    """MovieFlix Lab settings, read once from ``MOVIEFLIX_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="MOVIEFLIX_",
        frozen=True,
        extra="ignore",
        populate_by_name=True,
    )

    # --- paths (anchored at the project root) -------------------------------------------
    data_dir: Path = PROJECT_ROOT / "data"
    models_dir: Path = PROJECT_ROOT / "models"
    reports_dir: Path = PROJECT_ROOT / "reports"
    notebooks_dir: Path = PROJECT_ROOT / "notebooks"

    # --- Kafka: an external cluster, or the local default ----------------------------------
    #: Bootstrap servers of an existing cluster. When set, no local broker is ever started.
    kafka_bootstrap: str | None = None
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: Path | None = None
    kafka_ssl_certificate_location: Path | None = None
    kafka_ssl_key_location: Path | None = None
    #: Any further librdkafka settings, as a JSON object (``{"client.rack": "eu-1a"}``).
    kafka_client_config: dict[str, str] = Field(default_factory=dict)

    #: Partitions and replication for the topic catalog. Replication unset: three replicas
    #: where the cluster has three brokers or more (two in sync for a write,
    #: ``topic_min_insync_replicas``), else one per broker.
    topic_partitions: int = Field(6, ge=1)
    topic_replication_factor: int | None = Field(None, ge=1)
    #: In-sync replicas an acks=all write needs, set on each topic the catalog creates.
    #: Unset: 2 with three replicas or more, else 1.
    topic_min_insync_replicas: int | None = Field(None, ge=1)

    # --- events on the wire ---------------------------------------------------------------
    #: How the gateway and the simulator write events to Kafka: ``json`` (the contracts'
    #: JSON) or ``avro`` (Avro's single-object encoding of the same contracts, about half
    #: the bytes). Every reader takes both, so a topic may hold both during a migration.
    wire_format: Literal["json", "avro"] = "json"

    # --- stream apps ------------------------------------------------------------------
    #: Seconds between checkpoints (offset commits, sink flushes, state changelog).
    stream_commit_interval_s: float = Field(5.0, gt=0)
    #: How long a consumer group waits for an instance that stopped without leaving (killed,
    #: crashed, cut off) before its partitions move on: Kafka's ``session.timeout.ms``. A
    #: clean stop leaves the group at once; lower means faster failover after a crash, and
    #: more needless rebalances on a machine that stalls (the broker allows 6 s at least).
    stream_session_timeout_s: float = Field(45.0, ge=6, le=1800)
    #: Times a stream app starts its run again, in the same process, after the run failed on
    #: Kafka being away (a broker lost mid-rebalance, a coordinator moving), before it gives
    #: up; state and offsets come back from Kafka as after a restart. 0: fail at once.
    stream_max_restarts: int = Field(5, ge=0)
    #: Exactly-once: how long a checkpoint's transaction commit may take before the run
    #: fails and starts again (a restart fences the old producer). librdkafka's commit has
    #: no bound of its own: after a node's loss one was seen waiting for the group
    #: coordinator for as long as the test watched (minutes), while the broker had long
    #: aborted the transaction (``transaction.timeout.ms``).
    stream_transaction_commit_timeout_s: float = Field(60.0, ge=1)
    #: RocksDB memory of each stream app process (its windows' and memories' state): the
    #: block cache all its stores share, and each store partition's write buffer (memtable,
    #: at most two per partition). Every state write appends a whole copy of the value to
    #: its partition's memtable until the memtable is flushed, so an app's memory climbs by
    #: about buffer x store partitions and drops back at each flush. Quix's defaults (a 1 GB
    #: cache, three 64 MB buffers per partition) let the fraud app (12 store partitions)
    #: climb for over an hour before its first flush (``make soak`` measures memory).
    stream_state_cache_mb: int = Field(64, ge=8)
    stream_state_write_buffer_mb: int = Field(4, ge=1)
    #: PostgreSQL sink of the stream apps (window results, watch-history rows); off if unset.
    #: A libpq connection string, e.g. ``postgresql://user:pass@host:5432/movieflix``.
    postgres_dsn: SecretStr | None = None
    #: Consumer groups are ``<prefix><app>``: another prefix runs an independent copy.
    stream_group_prefix: str = "movieflix-"
    #: Each stream app serves Prometheus ``/metrics`` on this port plus its place in
    #: ``analytics, fraud, recs`` (9470, 9471, 9472); 0 turns them off. When the port is
    #: taken (a second instance on the same machine) the app takes a free one and logs it.
    stream_metrics_port: int = Field(9470, ge=0, le=65533)
    stream_metrics_host: str = "127.0.0.1"
    #: Seconds between the consumer's statistics (its lag per partition on ``/metrics``).
    stream_metrics_interval_s: float = Field(5.0, ge=0.1, le=300)

    # --- fraud detection (the seed's numbers by default) -----------------------------
    #: A user starting this many movies within the window is a binge bot.
    fraud_binge_movies: int = Field(100, ge=1)
    fraud_binge_window_s: float = Field(300, gt=0)
    #: One IP logging into this many distinct accounts within the window is stuffing.
    fraud_stuffing_accounts: int = Field(50, ge=1)
    fraud_stuffing_window_s: float = Field(600, gt=0)
    #: Failed logins of one user within the window that make a burst.
    fraud_failed_logins: int = Field(10, ge=1)
    fraud_failed_window_s: float = Field(600, gt=0)
    #: After an alert a detector stays quiet for that entity this long past the incident.
    fraud_cooldown_s: float = Field(1800, ge=0)
    #: A River score of a user's event (an IP's login attempt) reaching this bar raises a
    #: ``river_anomaly`` (``river_ip_anomaly``) alert; by default the bars ``movieflix-lab
    #: train fraud`` chose on its validation simulation (``ModelConfig``'s defaults).
    fraud_alert_score: float | None = Field(None, gt=0, le=1)
    fraud_ip_alert_score: float | None = Field(None, gt=0, le=1)
    #: Where the fraud app checkpoints its River model (``model.pkl`` + ``model.json``);
    #: by default ``<models_dir>/fraud``.
    fraud_model_dir: Path | None = None

    # --- recommendations ----------------------------------------------------------------
    #: Model versions (``<version>/`` and the ``latest`` link); by default ``<models_dir>/recs``.
    recs_model_dir: Path | None = None
    #: The recs app refits the whole model in the background this often (0: never).
    recs_refit_interval_s: float = Field(900.0, ge=0)
    #: How often the recs app and the serve app look for a new model version.
    recs_reload_interval_s: float = Field(2.0, gt=0)

    # --- reports (set by the report runner for the notebook's kernel) ----------------------
    #: A JSON-lines file where :mod:`movieflix_lab.lab` records what a notebook reads.
    lab_record: Path | None = None
    #: A JSON file of topic offsets a re-run must read (``{topic: {partition: [a, b]}}``).
    lab_pins: Path | None = None
    #: Progress bars in notebooks (``MOVIEFLIX_LAB_PROGRESS``); the report runner turns them
    #: off, as a published page cannot show one.
    lab_progress: bool = True
    #: JupyterLab's token for ``movieflix-lab lab`` (``JUPYTER_TOKEN`` as Jupyter names it;
    #: unset: a new one each start).
    jupyter_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("MOVIEFLIX_JUPYTER_TOKEN", "JUPYTER_TOKEN", "jupyter_token"),
    )

    # --- the gateway ------------------------------------------------------------------
    #: When set, ``POST /v1/events`` requires it in the ``X-API-Key`` header.
    api_key: SecretStr | None = None
    #: When set, the endpoints that answer with user data (fraud alerts, recommendations,
    #: similar movies) require it (``serve/auth.py``).
    read_api_key: SecretStr | None = None
    #: When set, ``/metrics`` requires it.
    metrics_api_key: SecretStr | None = None
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(8000, ge=1, le=65535)
    #: The most events one request may carry, and the most bytes one body may have.
    gateway_max_batch: int = Field(500, ge=1)
    gateway_max_body_bytes: int = Field(1_048_576, ge=1024)
    #: How deeply a request body's JSON may nest (an event is an object in an array, its
    #: fields one level more: a few levels are all a valid body needs).
    gateway_max_json_depth: int = Field(16, ge=3, le=512)
    #: How far ahead of the gateway's clock an event's timestamp may be. Kafka refuses
    #: records stamped more than ``log.message.timestamp.after.max.ms`` (1 hour by default)
    #: ahead of the broker's clock; refusing earlier, with a 422 naming ``timestamp``, keeps
    #: the rest of a batch from failing at the broker.
    gateway_max_future_s: float = Field(3000.0, ge=0)
    #: How long the gateway waits for Kafka to confirm an event before answering 503.
    gateway_delivery_timeout_s: float = Field(10.0, gt=0)

    # --- the local broker --------------------------------------------------------------
    local_kafka_host: str = "127.0.0.1"
    local_kafka_port: int = Field(9092, ge=1, le=65535)
    #: The demo's own PostgreSQL server (data/postgres), when no postgres_dsn is set.
    local_postgres_port: int = Field(54329, ge=1, le=65535)
    local_controller_port: int = Field(9093, ge=1, le=65535)
    #: Nodes of the local cluster. Unset: as many as ``broker start --nodes N`` last started
    #: (``data/kafka/cluster.json``), else one.
    local_kafka_nodes: int | None = Field(None, ge=1, le=9)
    #: Broker storage, logs and pid file. Defaults to ``data/kafka``.
    kafka_data_dir: Path | None = None
    #: Where Maven copies the broker jars (``make kafka``).
    kafka_libs_dir: Path = PROJECT_ROOT / ".kafka" / "libs"
    kafka_pom: Path = PROJECT_ROOT / "kafka" / "pom.xml"
    kafka_heap: str = "1g"
    #: Seconds ``broker start`` waits for the broker to answer metadata requests.
    kafka_start_timeout_s: float = Field(90.0, gt=0)
    #: How long a command waits for the cluster to answer before it says none does.
    kafka_connect_timeout_s: float = Field(10.0, gt=0)
    #: A JDK/JRE to run the broker with; ``JAVA_HOME`` is honoured too.
    java_home: Path | None = Field(
        None, validation_alias=AliasChoices("MOVIEFLIX_JAVA_HOME", "JAVA_HOME", "java_home")
    )

    @field_validator("kafka_client_config", mode="before")
    @classmethod
    def _parse_client_config(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object of librdkafka settings: {exc}") from exc
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @field_validator("kafka_bootstrap", "api_key", "read_api_key", "metrics_api_key",
                     mode="before")  # fmt: skip
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _ports_differ(self) -> Settings:
        ports = [port for node in range(1, (self.local_kafka_nodes or 1) + 1)
                 for port in self.local_node_ports(node)]  # fmt: skip
        if len(set(ports)) != len(ports):
            raise ValueError(
                "local_kafka_port and local_controller_port must differ"
                + (" by an odd number (node N uses each plus 2 * (N - 1))"
                   if self.local_kafka_port != self.local_controller_port else "")
            )  # fmt: skip
        return self

    # --- derived values ---------------------------------------------------------------
    @property
    def api_key_value(self) -> str | None:
        """The gateway's API key in clear (for a client of it), or None when none is set."""
        return self.api_key.get_secret_value() if self.api_key is not None else None

    @property
    def uses_local_broker(self) -> bool:
        """True when no external cluster is configured."""
        return self.kafka_bootstrap is None

    @property
    def bootstrap_servers(self) -> str:
        """The bootstrap servers every client connects to (every node of the local
        cluster: a client starting while one is down still finds the others)."""
        if self.kafka_bootstrap is not None:
            return self.kafka_bootstrap
        host = self.local_kafka_host
        return ",".join(
            f"{host}:{self.local_node_ports(node)[0]}" for node in range(1, self.local_nodes + 1)
        )

    @property
    def local_nodes(self) -> int:
        """The local cluster's node count: ``local_kafka_nodes``, else what ``broker start``
        recorded (``cluster.json`` in the broker's home), else 1."""
        if self.local_kafka_nodes is not None:
            return self.local_kafka_nodes
        try:
            recorded = json.loads((self.broker_dir / "cluster.json").read_text())
            return max(1, int(recorded.get("nodes", 1)))
        except (OSError, ValueError, TypeError, AttributeError):
            return 1

    def local_node_ports(self, node: int) -> tuple[int, int]:
        """Node ``node``'s broker and controller ports (node 1: the configured ones).

        >>> Settings(local_kafka_port=9092, local_controller_port=9093).local_node_ports(3)
        (9096, 9097)
        """
        step = 2 * (node - 1)
        return self.local_kafka_port + step, self.local_controller_port + step

    def with_local_nodes(self, nodes: int) -> Settings:
        """These settings for a local cluster of ``nodes`` nodes."""
        return self.model_copy(update={"local_kafka_nodes": nodes})

    @property
    def broker_dir(self) -> Path:
        """The local broker's home: storage, logs, pid file."""
        return self.kafka_data_dir or self.data_dir / "kafka"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def processed_dir(self) -> Path:
        return self.data_dir / "processed"

    @property
    def fraud_model_path(self) -> Path:
        """The fraud app's model folder (``fraud_model_dir``, else ``models/fraud``)."""
        return self.fraud_model_dir or self.models_dir / "fraud"

    @property
    def recs_model_path(self) -> Path:
        """Recommendation model versions (``recs_model_dir``, else ``models/recs``)."""
        return self.recs_model_dir or self.models_dir / "recs"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()


def settings_environment(settings: Settings) -> dict[str, str]:
    """``settings`` as ``MOVIEFLIX_<NAME>`` variables: a child process reads the same settings.

    >>> env = settings_environment(Settings(topic_partitions=3, kafka_client_config={"a": "b"}))
    >>> env["MOVIEFLIX_TOPIC_PARTITIONS"], env["MOVIEFLIX_KAFKA_CLIENT_CONFIG"]
    ('3', '{"a": "b"}')
    """
    out = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, dict):
            value = json.dumps(value)
        out[f"MOVIEFLIX_{name.upper()}"] = str(value)
    return out


def child_environment(settings: Settings | None = None, **overrides: str) -> dict[str, str]:
    """An environment for a child process: this one's, with ``settings`` (all of them, in
    place of any ``MOVIEFLIX_*`` variables) and ``MOVIEFLIX_<NAME>`` ``overrides``.

    >>> child_environment(postgres_dsn="postgresql://x")["MOVIEFLIX_POSTGRES_DSN"]
    'postgresql://x'
    >>> child_environment(Settings(local_kafka_port=19092))["MOVIEFLIX_LOCAL_KAFKA_PORT"]
    '19092'
    """
    env = dict(os.environ)
    if settings is not None:
        env = {k: v for k, v in env.items() if not k.startswith("MOVIEFLIX_")}
        env.update(settings_environment(settings))
    return {**env, **{f"MOVIEFLIX_{k.upper()}": v for k, v in overrides.items()}}


#: prometheus_client's multiprocess mode: set (to a folder) for ``serve --workers N``.
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prometheus_multiproc_dir() -> str | None:
    """The folder the serve app's workers share their metrics through, if they do."""
    return os.environ.get(PROMETHEUS_MULTIPROC_ENV) or None


@contextmanager
def environment_overlay(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration (for a child a library starts itself,
    such as papermill's kernel); the previous values come back afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
