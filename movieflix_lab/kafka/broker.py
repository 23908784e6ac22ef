"""The local default cluster: real Apache Kafka in KRaft combined mode, one node or several.

The broker's jars come from Maven Central through the pinned ``kafka/pom.xml``
(:func:`fetch_kafka_libs`, run by ``make kafka``) and run on the machine's Java 17+. Its
home (``data/kafka/`` by default) holds, for the default single node::

    server.properties    generated from the settings on every start
    storage/             the log directories, formatted on first start
    logs/server.log      the broker's log (never the terminal)
    logs/server.out      the JVM's stdout/stderr
    broker.json          pid, address and version of the running broker

and for a cluster of several nodes (``broker start --nodes 3``) the same in ``node-1/``,
``node-2/``, …, with ``cluster.json`` (the node count and cluster id) beside them. Node
``N`` listens on the broker and controller ports plus ``2 * (N - 1)``
(:meth:`~movieflix_lab.config.Settings.local_node_ports`): 9092/9093, 9094/9095, 9096/9097.

Nothing here runs when ``MOVIEFLIX_KAFKA_BOOTSTRAP`` names another cluster.
"""

from __future__ import annotations

import base64
import contextlib
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
    "NodeStatus",
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


# --- the cluster ---------------------------------------------------------------------

#: The file recording how many nodes the local cluster has (written by ``start``).
CLUSTER_FILE = "cluster.json"
#: Seconds the last nodes of a cluster stop get once most voters are gone (they cannot
#: finish a controlled shutdown without a quorum).
QUORUM_LOST_GRACE_S = 10.0
#: A node's role: every node is a broker and a controller (KRaft combined mode).
ROLES = "broker,controller"


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    running: bool
    pid: int | None
    address: str
    controller_address: str
    home: Path
    log_file: Path
    roles: str = ROLES


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
    #: Every node of the local cluster, in id order (one for the default single broker).
    nodes: tuple[NodeStatus, ...] = ()

    @property
    def running_nodes(self) -> int:
        return sum(node.running for node in self.nodes)


class _Node:
    """One KRaft process of the local cluster: its folder, ports, pid file and log."""

    def __init__(self, settings: Settings, node_id: int, nodes: int) -> None:
        self.settings, self.node_id, self.nodes = settings, node_id, nodes
        # One node keeps the layout it always had; several get a folder each.
        self.home = settings.broker_dir if nodes == 1 else settings.broker_dir / f"node-{node_id}"
        self.port, self.controller_port = settings.local_node_ports(node_id)
        self.storage_dir = self.home / "storage"
        self.logs_dir = self.home / "logs"
        self.properties_file = self.home / "server.properties"
        self.pid_file = self.home / "broker.json"

    @property
    def address(self) -> str:
        return f"{self.settings.local_kafka_host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "server.log"

    def _read_pid_file(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.pid_file.read_text())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def recorded_version(self) -> str | None:
        recorded = self._read_pid_file() or {}
        return str(recorded["version"]) if recorded.get("version") else None

    def status(self) -> tuple[NodeStatus, bool]:
        """This node's status, and whether a stale pid file was removed."""
        recorded = self._read_pid_file()
        stale = False
        if recorded is not None:
            pid = int(recorded.get("pid", 0))  # type: ignore[call-overload]
            if pid > 0 and _alive(pid) and str(self.properties_file) in _cmdline(pid):
                return self._status(pid), False
            logger.info("removing stale broker pid file %s (pid %s is gone)", self.pid_file, pid)
            self.pid_file.unlink(missing_ok=True)
            stale = True
        elif self.pid_file.exists():  # unreadable
            self.pid_file.unlink(missing_ok=True)
            stale = True
        return self._status(None), stale

    def _status(self, pid: int | None) -> NodeStatus:
        host = self.settings.local_kafka_host
        return NodeStatus(self.node_id, pid is not None, pid, self.address,
                          f"{host}:{self.controller_port}", self.home, self.log_file)  # fmt: skip

    def check_ports(self) -> None:
        host = self.settings.local_kafka_host
        for what, used in (("broker", self.port), ("controller", self.controller_port)):
            if _port_in_use(host, used):
                node = f"node {self.node_id}'s " if self.nodes > 1 else "the "
                raise BrokerStartError(
                    f"port {used} on {host} ({node}{what} port) is taken by another process: "
                    f"stop it or choose another with MOVIEFLIX_LOCAL_"
                    f"{'KAFKA' if what == 'broker' else 'CONTROLLER'}_PORT"
                )

    def properties(self) -> str:
        s, host, n = self.settings, self.settings.local_kafka_host, self.nodes
        voters = ",".join(f"{i}@{host}:{s.local_node_ports(i)[1]}" for i in range(1, n + 1))
        replicas = str(min(3, n))
        isr = "2" if n >= 3 else "1"
        lines = {
            "process.roles": ROLES,
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.storage_dir),
            "num.partitions": str(s.topic_partitions),
            # The internal topics as a production cluster has them: three replicas and two
            # in sync for a write (one node: one, as it can only be).
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": isr,
            # Topics created without a replication factor (none of the kit's), and the
            # in-sync replicas an acks=all write needs (Quix's changelogs inherit it).
            "default.replication.factor": replicas,
            "min.insync.replicas": isr,
            # Consumer groups (and tests) start without the default 3 s wait.
            "group.initial.rebalance.delay.ms": "0",
            # The topic catalog creates topics; a typo must not create one silently.
            "auto.create.topics.enable": "false",
        }
        header = "# Generated by movieflix-lab on every `broker start`; edits are overwritten.\n"
        return header + "".join(f"{key}={value}\n" for key, value in lines.items())

    def launch(
        self, jvm: list[str], version: str | None, cluster_id: str
    ) -> subprocess.Popen[bytes]:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self.properties())
        if not (self.storage_dir / "meta.properties").exists():
            self._format(jvm, cluster_id)
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
        self.pid_file.write_text(json.dumps({
            "pid": process.pid, "node_id": self.node_id, "bootstrap": self.address,
            "version": version, "started_at": time.time(),
        }))  # fmt: skip
        return process

    def _format(self, jvm: list[str], cluster_id: str) -> None:
        done = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
             "--config", str(self.properties_file), "--ignore-formatted"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            last = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
            raise BrokerStartError(f"formatting the broker storage failed: {last[0]}")

    def last_error_line(self) -> str:
        for path in (self.log_file, self.logs_dir / "server.out"):
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            errors = [line for line in lines if "ERROR" in line or "Exception" in line]
            if errors:
                return errors[-1].strip()[:300]
        return "no error logged"


class LocalBroker:
    """Start, stop and inspect the local KRaft cluster: one node by default, or several
    (``start(nodes=3)``), each a broker and a controller of a quorum of all of them.

    Why combined nodes rather than one controller and three brokers: three JVMs instead of
    four on a two-core machine, and losing a node then loses a broker *and* a voter at once,
    so the failover tests meet a partition leader's and the active controller's loss
    together (and two nodes down is a lost quorum, not merely two lost brokers).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.broker_dir
        self.cluster_file = self.home / CLUSTER_FILE

    # -- inspection --
    @property
    def node_count(self) -> int:
        return self.settings.local_nodes

    def _nodes(self, count: int | None = None) -> list[_Node]:
        self._require_local()
        count = count or self.node_count
        return [_Node(self.settings, i, count) for i in range(1, count + 1)]

    def _bootstrap(self, nodes: list[_Node]) -> str:
        return ",".join(node.address for node in nodes)

    def status(self) -> BrokerStatus:
        """Running (every node) or stopped; pid files of processes that are gone are removed."""
        self._require_local()
        nodes = self._nodes()
        seen = [node.status() for node in nodes]
        statuses = tuple(state for state, _ in seen)
        stale = any(removed for _, removed in seen)
        first = next((n for n, st in zip(nodes, statuses, strict=True) if st.running), None)
        version = (first.recorded_version() if first else None) or kafka_version(
            self.settings.kafka_libs_dir
        )
        running = all(st.running for st in statuses)
        return BrokerStatus(
            running=running,
            pid=statuses[0].pid,
            bootstrap=self._bootstrap(nodes),
            version=version,
            home=self.home,
            log_file=nodes[0].log_file,
            stale_pid_removed=stale,
            nodes=statuses,
        )

    # -- start --
    def _jvm(self, nodes: int) -> tuple[list[str], str | None]:
        java = find_java(self.settings)
        libs, _ = fetch_kafka_libs(self.settings)
        heap = self.settings.kafka_heap
        if nodes > 1 and "kafka_heap" not in self.settings.model_fields_set:
            heap = "512m"  # three of them beside the apps on a small machine
        jvm = [
            str(java.executable),
            "-Xms256m",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={_LOG4J2_CONFIG}",
            "-cp",
            f"{libs}/*",
        ]
        return jvm, kafka_version(libs)

    def _cluster_id(self, nodes: int) -> str:
        """The cluster's id: kept in ``cluster.json`` for a multi-node cluster (every node is
        formatted with it), new for a single node's first start."""
        if nodes == 1:
            return _random_cluster_id()
        try:
            recorded = json.loads(self.cluster_file.read_text())
            if recorded.get("nodes") == nodes and recorded.get("cluster_id"):
                return str(recorded["cluster_id"])
        except (OSError, ValueError):
            pass
        return _random_cluster_id()

    def start(self, nodes: int | None = None) -> BrokerStatus:
        """Start every node (``nodes`` of them: the count this cluster was started with,
        else 1) and return once the cluster answers metadata requests with all of them."""
        wanted = nodes or self.node_count
        current = self.status()
        if current.running_nodes and wanted != len(current.nodes):
            raise BrokerStartError(
                f"the local cluster runs with {len(current.nodes)} node(s): stop it "
                f"(movieflix-lab broker stop) before starting it with {wanted}"
            )
        if current.running and wanted == len(current.nodes):
            return BrokerStatus(**{**current.__dict__, "already_running": True})
        self.home.mkdir(parents=True, exist_ok=True)
        cluster_id = self._cluster_id(wanted)
        if wanted > 1:
            self.cluster_file.write_text(json.dumps({"nodes": wanted, "cluster_id": cluster_id}))
        else:
            self.cluster_file.unlink(missing_ok=True)
        self.settings = self.settings.with_local_nodes(wanted)
        ports = [port for n in range(1, wanted + 1) for port in self.settings.local_node_ports(n)]
        if len(set(ports)) != len(ports):
            raise BrokerStartError(
                f"{wanted} nodes need distinct ports, and node N uses the broker and controller "
                "ports plus 2 * (N - 1): make MOVIEFLIX_LOCAL_KAFKA_PORT and "
                "MOVIEFLIX_LOCAL_CONTROLLER_PORT differ by an odd number"
            )
        down = [member for member in self._nodes(wanted) if not member.status()[0].running]
        self._launch(down, cluster_id, wanted)
        status = self.status()
        return BrokerStatus(**{**status.__dict__, "stale_pid_removed": current.stale_pid_removed})

    def start_node(self, node_id: int) -> NodeStatus:
        """Start one node of the cluster again (after ``stop_node`` or a kill); returns once
        it has rejoined the cluster."""
        member = self._member(node_id)
        state, _ = member.status()
        if state.running:
            return state
        cluster_id = self._cluster_id(self.node_count)
        self._launch([member], cluster_id, self.node_count)
        return member.status()[0]

    def _launch(self, members: list[_Node], cluster_id: str, nodes: int) -> None:
        for member in members:
            member.check_ports()
        jvm, version = self._jvm(nodes)
        processes: list[tuple[_Node, subprocess.Popen[bytes]]] = []
        try:
            for member in members:  # all at once: a quorum forms only with a majority up
                log_jvm = [*jvm[:-2], f"-Dkafka.logs.dir={member.logs_dir}", *jvm[-2:]]
                processes.append((member, member.launch(log_jvm, version, cluster_id)))
            self._wait_until_ready(processes, {m.node_id for m in members})
        except BaseException:
            for member, process in processes:
                self._kill(process.pid)
                member.pid_file.unlink(missing_ok=True)
            raise

    def _wait_until_ready(
        self, processes: list[tuple[_Node, subprocess.Popen[bytes]]], wanted: set[int]
    ) -> None:
        """Until the cluster's metadata lists every node just started as a broker."""
        deadline = time.monotonic() + self.settings.kafka_start_timeout_s
        admin = admin_client(self.settings, **{"socket.connection.setup.timeout.ms": 1000})
        while time.monotonic() < deadline:
            for member, process in processes:
                if process.poll() is not None:
                    node = f"node {member.node_id}" if member.nodes > 1 else "the Kafka broker"
                    raise BrokerStartError(
                        f"{node} exited with code {process.returncode} while starting: "
                        f"{member.last_error_line()} (see {member.log_file})"
                    )
            try:
                metadata = admin.list_topics(timeout=1.0)
                if wanted <= set(metadata.brokers):
                    return
            except KafkaException:
                pass
            time.sleep(0.2)
        raise BrokerStartError(
            f"the Kafka broker did not answer within {self.settings.kafka_start_timeout_s:.0f} s "
            f"(see {processes[0][0].log_file})"
        )

    # -- stop --
    def _member(self, node_id: int) -> _Node:
        nodes = self._nodes()
        if not 1 <= node_id <= len(nodes):
            raise BrokerError(
                f"node {node_id} does not exist: the local cluster has {len(nodes)} node(s) "
                f"(1-{len(nodes)})"
            )
        return nodes[node_id - 1]

    def stop_node(self, node_id: int, timeout: float = 60.0) -> bool:
        """Stop one node gracefully; False when it was not running."""
        return self._stop(self._member(node_id), timeout)

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop every node gracefully (SIGTERM, then wait); False when none was running.

        All at once: a node stopping alone waits for the quorum to move its leadership, and
        the last ones would wait for a quorum that is gone."""
        members = [(m, m.status()[0]) for m in self._nodes()]
        running = [(m, st) for m, st in members if st.running and st.pid is not None]
        for _, state in running:
            with contextlib.suppress(ProcessLookupError):  # gone since its status was read
                os.kill(state.pid, signal.SIGTERM)  # type: ignore[arg-type]
        started = time.monotonic()
        deadline = started + timeout
        quorum_lost_at: float | None = None
        while time.monotonic() < deadline:
            alive = [m for m, st in running if _alive(st.pid)]  # type: ignore[arg-type]
            if not alive:
                break
            # Once a majority of the voters is gone, the rest cannot finish a controlled
            # shutdown (it needs the quorum): seen waiting the whole minute. A few seconds
            # for what they can still flush, then they are killed below.
            if len(members) > 1 and len(alive) <= len(members) // 2:
                quorum_lost_at = quorum_lost_at or time.monotonic()
                if time.monotonic() - quorum_lost_at > QUORUM_LOST_GRACE_S:
                    break
            time.sleep(0.1)
        for member, state in running:
            self._wait_gone(member, state.pid, 0, waited=time.monotonic() - started)  # type: ignore[arg-type]
        return bool(running)

    def _stop(self, member: _Node, timeout: float) -> bool:
        state, _ = member.status()
        if not state.running or state.pid is None:
            return False
        os.kill(state.pid, signal.SIGTERM)
        self._wait_gone(member, state.pid, timeout)
        return True

    def _wait_gone(
        self, member: _Node, pid: int, timeout: float, waited: float | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            logger.warning("broker pid %s ignored SIGTERM for %.0f s: killing it", pid,
                           timeout if waited is None else waited)  # fmt: skip
            self._kill(pid)
        member.pid_file.unlink(missing_ok=True)

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
