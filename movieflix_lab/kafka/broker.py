"""The local default cluster: one real Apache Kafka broker in KRaft combined mode.

The broker's jars come from Maven Central through the pinned ``kafka/pom.xml``
(:func:`fetch_kafka_libs`, run by ``make kafka``) and run on the machine's Java 17+. Its
home (``data/kafka/`` by default) holds::

    server.properties    generated from the settings on every start
    storage/             the log directories, formatted on first start
    logs/server.log      the broker's log (never the terminal)
    logs/server.out      the JVM's stdout/stderr
    broker.json          pid, address and version of the running broker

Nothing here runs when ``MOVIEFLIX_KAFKA_BOOTSTRAP`` names another cluster.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException

from movieflix_lab.config import Settings
from movieflix_lab.kafka.client import admin_client
from movieflix_lab.kafka.exceptions import (
    BrokerError,
    BrokerStartError,
    ExternalClusterConfigured,
    JavaNotFound,
    MavenNotFound,
)

__all__ = [
    "BrokerStatus",
    "JavaRuntime",
    "LocalBroker",
    "broker_session",
    "fetch_kafka_libs",
    "find_java",
    "kafka_version",
]

logger = logging.getLogger(__name__)

MIN_JAVA = 17
_LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")
_BROKER_JAR = re.compile(r"^kafka_2\.13-(?P<version>[\d.]+)\.jar$")


# --- Java and the jars ---------------------------------------------------------------


@dataclass(frozen=True)
class JavaRuntime:
    executable: Path
    major: int


def _java_major(version_output: str) -> int | None:
    """The major version in ``java -version`` output.

    >>> _java_major('openjdk version "17.0.15" 2025-04-15')
    17
    >>> _java_major('java version "1.8.0_402"')
    8
    >>> _java_major("no version here") is None
    True
    """
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java(settings: Settings, *, for_tools: bool = False) -> JavaRuntime:
    """The Java runtime to run the broker (or Kafka's tools) with: ``JAVA_HOME``'s, else
    ``java`` on PATH."""
    install = f"install Java {MIN_JAVA}+ (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    if not for_tools:  # a running cluster elsewhere needs no local broker, but tools run here
        install += "; or set MOVIEFLIX_KAFKA_BOOTSTRAP to use a running Kafka cluster"
    needs = "Kafka's tools need it" if for_tools else "the local Kafka broker needs it"
    candidates: list[Path] = []
    if settings.java_home is not None:
        candidates.append(settings.java_home / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    executable = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
    if executable is None:
        raise JavaNotFound(f"Java not found: {needs}; {install}")
    try:
        probe = subprocess.run(
            [str(executable), "-version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaNotFound(f"{executable} -version failed ({exc}); {install}") from None
    major = _java_major(probe.stderr + probe.stdout)
    if major is None:
        raise JavaNotFound(f"could not read the version of {executable}; {install}")
    if major < MIN_JAVA:
        raise JavaNotFound(f"{executable} is Java {major}, Kafka 4 needs {MIN_JAVA}+; {install}")
    return JavaRuntime(executable, major)


def kafka_version(libs_dir: Path) -> str | None:
    """The broker version found in ``libs_dir``, or None when the jars are not there."""
    if not libs_dir.is_dir():
        return None
    for jar in libs_dir.iterdir():
        match = _BROKER_JAR.match(jar.name)
        if match:
            return match.group("version")
    return None


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def fetch_kafka_libs(settings: Settings, *, force: bool = False) -> tuple[Path, bool]:
    """Copy the broker jars from Maven Central into ``kafka_libs_dir``.

    Idempotent: when the jars of the current ``kafka/pom.xml`` are already there it does
    nothing. Returns the folder and whether it fetched anything.
    """
    libs = settings.kafka_libs_dir
    stamp = libs / ".pom.sha256"
    pom = settings.kafka_pom
    if not pom.is_file():
        raise BrokerError(f"the Kafka pom is missing at {pom}: restore kafka/pom.xml from git")
    digest = _pom_digest(pom)
    if (
        not force
        and kafka_version(libs)
        and stamp.is_file()
        and stamp.read_text().strip() == digest
    ):
        return libs, False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenNotFound(
            "Maven not found: it fetches the Kafka broker jars from Maven Central; "
            "install it (apt-get install maven) or set MOVIEFLIX_KAFKA_BOOTSTRAP to use a "
            "running Kafka cluster"
        )
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]
    logger.info("fetching Kafka jars: %s", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not kafka_version(libs):
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        raise BrokerError(f"Maven could not fetch the Kafka jars: {tail[0]}")
    stamp.write_text(digest + "\n")
    return libs, True


# --- process helpers -----------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it if it exited
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _random_cluster_id() -> str:
    """A cluster id as Kafka's ``Uuid.randomUuid()`` makes it (base64url, 22 chars).

    Like Kafka's, it never starts with ``-``: a command line would read that as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


# --- the broker ----------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    version: str | None
    home: Path
    log_file: Path
    #: True when a pid file pointed at a process that no longer runs, and was removed.
    stale_pid_removed: bool = False
    #: True when ``start`` found the broker already running.
    already_running: bool = False


class LocalBroker:
    """Start, stop and inspect the local single-node KRaft broker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.broker_dir
        self.storage_dir = self.home / "storage"
        self.logs_dir = self.home / "logs"
        self.properties_file = self.home / "server.properties"
        self.pid_file = self.home / "broker.json"

    # -- inspection --
    @property
    def log_file(self) -> Path:
        return self.logs_dir / "server.log"

    def _read_pid_file(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.pid_file.read_text())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def _is_our_broker(self, pid: int) -> bool:
        return _alive(pid) and str(self.properties_file) in _cmdline(pid)

    def status(self) -> BrokerStatus:
        """Running or stopped; a pid file of a process that is gone is removed."""
        self._require_local()
        recorded = self._read_pid_file()
        stale = False
        if recorded is not None:
            pid = int(recorded.get("pid", 0))  # type: ignore[call-overload]
            if pid > 0 and self._is_our_broker(pid):
                return BrokerStatus(
                    running=True,
                    pid=pid,
                    bootstrap=str(recorded.get("bootstrap", self.settings.bootstrap_servers)),
                    version=str(recorded.get("version")) if recorded.get("version") else None,
                    home=self.home,
                    log_file=self.log_file,
                )
            logger.info("removing stale broker pid file %s (pid %s is gone)", self.pid_file, pid)
            self.pid_file.unlink(missing_ok=True)
            stale = True
        elif self.pid_file.exists():  # unreadable
            self.pid_file.unlink(missing_ok=True)
            stale = True
        return BrokerStatus(
            running=False,
            pid=None,
            bootstrap=self.settings.bootstrap_servers,
            version=kafka_version(self.settings.kafka_libs_dir),
            home=self.home,
            log_file=self.log_file,
            stale_pid_removed=stale,
        )

    # -- start --
    def start(self) -> BrokerStatus:
        """Start the broker and return once it answers metadata requests."""
        current = self.status()
        if current.running:
            return BrokerStatus(**{**current.__dict__, "already_running": True})
        java = find_java(self.settings)
        libs, _ = fetch_kafka_libs(self.settings)
        version = kafka_version(libs)
        host, port = self.settings.local_kafka_host, self.settings.local_kafka_port
        for what, used in (("broker", port), ("controller", self.settings.local_controller_port)):
            if _port_in_use(host, used):
                raise BrokerStartError(
                    f"port {used} on {host} (the {what} port) is taken by another process: stop "
                    f"it or choose another with MOVIEFLIX_LOCAL_"
                    f"{'KAFKA' if what == 'broker' else 'CONTROLLER'}_PORT"
                )

        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self._server_properties())
        classpath = f"{libs}/*"
        jvm = [
            str(java.executable),
            "-Xms256m",
            f"-Xmx{self.settings.kafka_heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={_LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp",
            classpath,
        ]
        if not (self.storage_dir / "meta.properties").exists():
            self._format(jvm)

        out = (self.logs_dir / "server.out").open("ab")
        try:
            process = subprocess.Popen(
                [*jvm, "kafka.Kafka", str(self.properties_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal must not kill the broker
            )
        finally:
            out.close()
        bootstrap = f"{host}:{port}"
        self.pid_file.write_text(
            json.dumps(
                {
                    "pid": process.pid,
                    "bootstrap": bootstrap,
                    "version": version,
                    "started_at": time.time(),
                }
            )
        )
        try:
            self._wait_until_ready(process)
        except BaseException:
            self._kill(process.pid)
            self.pid_file.unlink(missing_ok=True)
            raise
        return BrokerStatus(
            running=True,
            pid=process.pid,
            bootstrap=bootstrap,
            version=version,
            home=self.home,
            log_file=self.log_file,
            stale_pid_removed=current.stale_pid_removed,
        )

    def _server_properties(self) -> str:
        s = self.settings
        host = s.local_kafka_host
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{s.local_controller_port}",
            "listeners": f"PLAINTEXT://{host}:{s.local_kafka_port},"
            f"CONTROLLER://{host}:{s.local_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{s.local_kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.storage_dir),
            "num.partitions": str(s.topic_partitions),
            # One node: the internal topics cannot have three replicas.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Consumer groups (and tests) start without the default 3 s wait.
            "group.initial.rebalance.delay.ms": "0",
            # The topic catalog creates topics; a typo must not create one silently.
            "auto.create.topics.enable": "false",
        }
        header = "# Generated by movieflix-lab on every `broker start`; edits are overwritten.\n"
        return header + "".join(f"{key}={value}\n" for key, value in lines.items())

    def _format(self, jvm: list[str]) -> None:
        done = subprocess.run(
            [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={_random_cluster_id()}",
                "--config",
                str(self.properties_file),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            last = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
            raise BrokerStartError(f"formatting the broker storage failed: {last[0]}")

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.settings.kafka_start_timeout_s
        admin = admin_client(self.settings, **{"socket.connection.setup.timeout.ms": 1000})
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BrokerStartError(
                    f"the Kafka broker exited with code {process.returncode} while starting: "
                    f"{self._last_error_line()} (see {self.log_file})"
                )
            try:
                metadata = admin.list_topics(timeout=1.0)
                if metadata.brokers:
                    return
            except KafkaException:
                pass
            time.sleep(0.2)
        raise BrokerStartError(
            f"the Kafka broker did not answer within {self.settings.kafka_start_timeout_s:.0f} s "
            f"(see {self.log_file})"
        )

    def _last_error_line(self) -> str:
        for path in (self.log_file, self.logs_dir / "server.out"):
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            errors = [line for line in lines if "ERROR" in line or "Exception" in line]
            if errors:
                return errors[-1].strip()[:300]
        return "no error logged"

    # -- stop --
    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the broker gracefully (SIGTERM, then wait); False when it was not running."""
        current = self.status()
        if not current.running or current.pid is None:
            return False
        os.kill(current.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(current.pid):
            time.sleep(0.1)
        if _alive(current.pid):
            logger.warning(
                "broker pid %s ignored SIGTERM for %.0f s: killing it", current.pid, timeout
            )
            self._kill(current.pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _kill(pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)

    def _require_local(self) -> None:
        if not self.settings.uses_local_broker:
            raise ExternalClusterConfigured(
                f"MOVIEFLIX_KAFKA_BOOTSTRAP is set ({self.settings.kafka_bootstrap}): the local "
                "broker is not used; unset it to manage the local broker"
            )


@contextmanager
def broker_session(
    settings: Settings,
    *,
    say: Callable[[str], None] = lambda _: None,
    stop_after: bool = True,
    who: str = "this run",
) -> Iterator[BrokerStatus | None]:
    """The cluster a job runs on, for the duration of the block.

    The local broker (no ``MOVIEFLIX_KAFKA_BOOTSTRAP``): started unless it already runs,
    and stopped on the way out only if this session started it (and ``stop_after``),
    saying so ("stopped the broker ``who`` started"); yields its status. A configured
    cluster: waited for until it answers; yields None.
    """
    from movieflix_lab.kafka.client import wait_until_reachable

    if not settings.uses_local_broker:
        wait_until_reachable(settings)
        say(f"using the Kafka cluster at {settings.bootstrap_servers}")
        yield None
        return
    broker = LocalBroker(settings)
    status = broker.start()
    say(f"Kafka {status.version} at {status.bootstrap} (pid {status.pid})")
    try:
        yield status
    finally:
        if stop_after and not status.already_running:
            broker.stop()
            say(f"stopped the broker {who} started")
