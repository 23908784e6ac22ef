"""The stream apps on a three-node cluster: through a node's loss, and two instances each.

Every output is checked against an independent batch computation over the same events (the
windows in the results topic, Parquet and PostgreSQL; the rules' alerts; the recommendation
updates), with replication factor 3 and ``min.insync.replicas=2`` on every topic, Quix's
changelogs and repartitions included.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from movieflix_lab.config import Settings
from movieflix_lab.jobs.processes import spawn
from movieflix_lab.kafka.broker import LocalBroker
from movieflix_lab.kafka.catalog import create_topics, describe_topics
from movieflix_lab.simulate import KafkaSink, SimulationConfig, Simulator, run_simulation
from movieflix_lab.streams.runner import outstanding
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.cluster import busiest_leader, kill_node
from tests.fixtures.kafka import with_settings
from tests.fixtures.recovery import (
    GRACE_S,
    Progress,
    assert_exact,
    assert_fraud_and_recs,
    close_windows,
    expected_windows,
    start_app,
)
from tests.test_reliability.test_cluster import SECONDS_DOWN

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APPS = ("analytics", "fraud", "recs")
EOS = ("--guarantee", "exactly-once")
#: Big enough that a kill at a quarter of the analytics app's backlog lands mid-run.
BACKLOG = SimulationConfig(seed=23, users=4000, movies=500, minutes=None, events=120_000,
                           activity=30)  # fmt: skip
#: Enough for each of two instances to own partitions with records (3,000 users).
TWINS = SimulationConfig(seed=29, users=3000, movies=500, minutes=None, events=20_000,
                         activity=30)  # fmt: skip


def _backlog(cluster: Settings, tmp_path: Path, config: SimulationConfig, prefix: str,
             database: str) -> tuple[Settings, dict[str, str], list]:  # type: ignore[type-arg]  # fmt: skip
    settings = with_settings(cluster, data_dir=tmp_path / "data", models_dir=tmp_path / "models",
                             stream_group_prefix=prefix, postgres_dsn=database,
                             stream_commit_interval_s=0.5)  # fmt: skip
    create_topics(settings)
    run_simulation(config, KafkaSink(settings))
    env = cli_env(settings, MOVIEFLIX_STREAM_COMMIT_INTERVAL_S="0.5",
                  MOVIEFLIX_STREAM_GROUP_PREFIX=prefix, MOVIEFLIX_POSTGRES_DSN=database,
                  MOVIEFLIX_STREAM_SESSION_TIMEOUT_S="6")  # fmt: skip
    return settings, env, list(Simulator(config).events())


def _start(env: dict[str, str], folder: Path, app: str, *args: str) -> subprocess.Popen[str]:
    """``stream APP`` in a child whose output goes to files (``folder/APP.out``, ``.err``):
    a broker's loss makes librdkafka log more than a pipe holds."""
    folder.mkdir(parents=True, exist_ok=True)
    return spawn(["--debug", "stream", app, "--grace", GRACE_S, *args], env,
                 stdout=(folder / f"{app}.out").open("w"),
                 stderr=(folder / f"{app}.err").open("w"), text=True)  # fmt: skip


def _finish(env: dict[str, str], app: str) -> str:
    """One more run of ``app`` until it has nothing left to read; its last line."""
    done = run_cli("stream", app, "--timeout", "3", "--grace", GRACE_S, *EOS, env=env)
    assert done.returncode == 0, done.stderr
    assert "left to read" not in done.stdout, done.stdout
    return done.stdout.strip().splitlines()[-1]


def _rounded(shares: dict[str, float]) -> dict[str, float]:
    """Shares to print: three places, so a small share still shows as more than none."""
    return {name: round(share, 3) for name, share in shares.items()}


def _all_replicated(settings: Settings) -> None:
    """Every topic on the cluster, the apps' changelogs and repartitions included, has three
    replicas (none created with Quix's default of one)."""
    described = describe_topics(settings, include_internal=True)
    internal = [d.name for d in described if d.name.startswith(("changelog__", "repartition__"))]
    assert internal, "the apps made no changelog or repartition topic"
    assert {d.name: d.replication_factor for d in described if d.replication_factor != 3} == {}


@pytest.mark.timeout(900)  # about 200 s on 2 cores; a slow machine takes twice that
def test_stream_apps_through_a_node_loss(cluster, tmp_path: Path, fresh_database: str) -> None:  # type: ignore[no-untyped-def]
    """The analytics, fraud and recs apps under exactly-once catch up a backlog while the
    node leading most of their input partitions is SIGKILLed and restarted: every window is
    the batch computation's (each once), every rule alert the batch run's (no version twice),
    every user's viewing counts exact."""
    settings, env, events = _backlog(cluster, tmp_path, BACKLOG, "loss-", fresh_database)
    inputs = {"analytics": "watch-history", "fraud": "user-interactions", "recs": "watch-history"}
    progress = {name: Progress(settings, f"loss-{name}", topic) for name, topic in inputs.items()}
    # The kill lands while every app is mid-backlog: the recs app, the quickest, starts once
    # the analytics app has committed some of its backlog.
    logs = tmp_path / "logs"
    apps = {name: _start(env, logs, name, "--timeout", "8", *EOS) for name in APPS[:2]}
    deadline = time.monotonic() + 240

    def running() -> None:
        for name, app in apps.items():
            assert app.poll() is None, (name, (logs / f"{name}.err").read_text()[-3000:])
        assert time.monotonic() < deadline, {n: p.share() for n, p in progress.items()}
        time.sleep(0.05)

    while progress["analytics"].share() < 0.05:
        running()
    apps["recs"] = _start(env, logs, "recs", "--timeout", "8", *EOS)
    while (recs := progress["recs"].share()) == 0 or (
        recs < 0.1 and progress["analytics"].share() < 0.4
    ):
        running()
    at_kill = {name: p.share() for name, p in progress.items()}  # rounded only to print
    node = busiest_leader(settings, ["watch-history", "user-interactions", "search-events"])
    kill_node(settings, node)
    killed = time.monotonic()
    time.sleep(SECONDS_DOWN)
    LocalBroker(settings).start_node(node)
    print(f"node {node} killed with the apps at {_rounded(at_kill)} of their backlogs, back after "
          f"{time.monotonic() - killed:.1f} s")  # fmt: skip
    for reader in progress.values():
        reader.close()
    assert all(0 < share < 1.0 for share in at_kill.values()), _rounded(at_kill)  # mid-run, each
    for name, app in apps.items():
        try:
            code = app.wait(300)
        except subprocess.TimeoutExpired:
            app.kill()
            raise
        said, errors = ((logs / f"{name}.{kind}").read_text() for kind in ("out", "err"))
        if code != 0:
            print(f"--- {name} exited with {code}:\n{said}\n{errors[-6000:]}")
        restarts = " ".join(errors.split()).count("starting it again in")
        print(f"{name}: exited {code}; runs started again in the process: {restarts}")
        # The node's loss is no crash: each app rode it out and exited on its own timeout.
        assert code == 0, (name, code)
    for name in APPS:
        print(f"{name}: {_finish(env, name)}")
    close_windows(settings, env, events, *EOS)
    assert outstanding(settings, "analytics", "exactly-once", exact=True) == 0
    assert_exact(settings, expected_windows(events), once=True)
    assert_fraud_and_recs(settings, events, exactly_once=True)
    _all_replicated(settings)


@pytest.mark.timeout(900)  # about 165 s on 2 cores
def test_two_instances_of_each_app_across_the_nodes(  # type: ignore[no-untyped-def]
    cluster, tmp_path: Path, fresh_database: str
) -> None:
    """Two instances of each app in one group share the partitions on three nodes, and
    together give what one gives (the batch computation, which one instance equals in
    ``tests/test_streams``)."""
    settings, env, events = _backlog(cluster, tmp_path, TWINS, "twins3-", fresh_database)
    for name in APPS:  # app by app: six apps and three brokers on two cores is a crowd
        pair = [start_app(env, "--instance", i, "--timeout", "5", *EOS, app=name) for i in "ab"]
        for app in pair:
            assert app.wait(300) == 0, (name, app.stderr.read() if app.stderr else "")
        owned = [i for i in "ab" if any(
            p.is_dir() and p.name.isdigit() for p in (settings.state_dir / name / i).rglob("*")
        )]  # fmt: skip
        assert owned == ["a", "b"], (name, owned)  # each instance held partitions
        print(f"{name}: {_finish(env, name)}")
    close_windows(settings, env, events, "--instance", "a", *EOS)
    assert_exact(settings, expected_windows(events), once=True)
    assert_fraud_and_recs(settings, events, exactly_once=True)
    _all_replicated(settings)
