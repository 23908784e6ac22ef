"""Kafka's own command-line tools, run on the kit's jars with the kit's cluster settings.

The jars are the broker's (``kafka/pom.xml`` pins ``kafka-tools`` beside it), so a tool is
the same 4.3.1 code as the broker; the kit's bootstrap address goes first on the command
line, and for a secured cluster its SASL/TLS settings go in a ``--command-config`` file
(unless the caller passes one).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from movieflix_lab.config import Settings
from movieflix_lab.exceptions import MovieflixError
from movieflix_lab.kafka.broker import fetch_kafka_libs, find_java

__all__ = ["TOOLS", "KafkaTool", "java_client_properties", "run_tool", "tool_command"]

_LOG4J2_CONFIG = Path(__file__).with_name("tools-log4j2.properties")


@dataclass(frozen=True)
class KafkaTool:
    main_class: str
    about: str
    #: False for a tool that reads files, not the cluster.
    connects: bool = True


TOOLS = {
    "consumer-groups": KafkaTool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "list, describe, reset and delete consumer groups (kafka-consumer-groups.sh)",
    ),
    "transactions": KafkaTool(
        "org.apache.kafka.tools.TransactionsCommand",
        "list, describe, find hanging and abort transactions (kafka-transactions.sh)",
    ),
    "dump-log": KafkaTool(
        "org.apache.kafka.tools.DumpLogSegments",
        "print a log segment's records and batches (kafka-dump-log.sh; reads files)",
        connects=False,
    ),
    "topics": KafkaTool(
        "org.apache.kafka.tools.TopicCommand",
        "list, describe, create, alter and delete topics (kafka-topics.sh)",
    ),
    "get-offsets": KafkaTool(
        "org.apache.kafka.tools.GetOffsetShell",
        "partitions' offsets, latest, earliest or by time (kafka-get-offsets.sh)",
    ),
    "configs": KafkaTool(
        "kafka.admin.ConfigCommand",
        "describe and alter topic, broker and client configs (kafka-configs.sh)",
    ),
    "log-dirs": KafkaTool(
        "org.apache.kafka.tools.LogDirsCommand",
        "the brokers' log directories and partition sizes (kafka-log-dirs.sh)",
    ),
    "metadata-quorum": KafkaTool(
        "org.apache.kafka.tools.MetadataQuorumCommand",
        "the KRaft controller quorum's status and replication (kafka-metadata-quorum.sh)",
    ),
    "delete-records": KafkaTool(
        "org.apache.kafka.tools.DeleteRecordsCommand",
        "delete records up to an offset (kafka-delete-records.sh)",
    ),
}


def java_client_properties(settings: Settings) -> dict[str, str]:
    """The kit's security settings as a Java client's properties; empty for PLAINTEXT.

    >>> from pydantic import SecretStr
    >>> props = java_client_properties(Settings(
    ...     kafka_bootstrap="k:9093", kafka_security_protocol="SASL_SSL",
    ...     kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="u",
    ...     kafka_sasl_password=SecretStr("p")))
    >>> props["sasl.jaas.config"]
    'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";'
    """
    if settings.kafka_security_protocol.upper() == "PLAINTEXT":
        return {}
    props = {"security.protocol": settings.kafka_security_protocol.upper()}
    mechanism = (settings.kafka_sasl_mechanism or "").upper()
    if mechanism:
        props["sasl.mechanism"] = mechanism
    module = {"PLAIN": "plain.PlainLoginModule", "SCRAM-SHA-256": "scram.ScramLoginModule",
              "SCRAM-SHA-512": "scram.ScramLoginModule"}.get(mechanism)  # fmt: skip
    if module and settings.kafka_sasl_username and settings.kafka_sasl_password is not None:

        def quoted(text: str) -> str:
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

        props["sasl.jaas.config"] = (
            f"org.apache.kafka.common.security.{module} required "
            f"username={quoted(settings.kafka_sasl_username)} "
            f"password={quoted(settings.kafka_sasl_password.get_secret_value())};"
        )
    if settings.kafka_ssl_ca_location:
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = str(settings.kafka_ssl_ca_location)
    return props


def tool_command(
    settings: Settings, name: str, args: list[str], *, command_config: str | None = None
) -> list[str]:
    """The command line that runs tool ``name`` with ``args`` (fetching the jars if needed):
    the kit's bootstrap address (and ``command_config``) first, unless ``args`` name their
    own or the tool reads files."""
    tool = TOOLS.get(name)
    if tool is None:
        raise MovieflixError(f"no Kafka tool {name!r}; the tools: {', '.join(TOOLS)}")
    java = find_java(settings, for_tools=True)
    libs, _ = fetch_kafka_libs(settings)
    if not any(libs.glob("kafka-tools-*.jar")):
        raise MovieflixError(
            f"Kafka's tools jar is not in {libs}: fetch the jars again "
            "(movieflix-lab broker fetch --force, or make kafka)"
        )
    command = [str(java.executable), "-Xmx512m", f"-Dlog4j2.configurationFile={_LOG4J2_CONFIG}",
               "-cp", f"{libs}/*", tool.main_class]  # fmt: skip
    if tool.connects and not set(args) & {"--bootstrap-server", "--bootstrap-controller"}:
        command += ["--bootstrap-server", settings.bootstrap_servers]
    if tool.connects and command_config and "--command-config" not in args:
        command += ["--command-config", command_config]
    return [*command, *args]


def run_tool(
    settings: Settings, name: str, args: list[str], *, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run tool ``name``; its output goes to the terminal unless ``capture``.

    For a secured cluster the kit's settings go in a ``--command-config`` file that lives
    only as long as the tool runs.
    """
    props = java_client_properties(settings)
    if not props:
        command = tool_command(settings, name, args)
        return subprocess.run(command, capture_output=capture, text=True, check=False)
    fd, config_file = tempfile.mkstemp(prefix="movieflix-kafka-tool-", suffix=".properties")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp's file: readable by this user only
            out.writelines(f"{key}={value}\n" for key, value in props.items())
        command = tool_command(settings, name, args, command_config=config_file)
        return subprocess.run(command, capture_output=capture, text=True, check=False)
    finally:
        os.unlink(config_file)
